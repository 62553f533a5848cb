"""PyTorch's side of the main job's speed: the CLI's default model and training step in PyTorch on
the same GPU, for the trained tokens per second beside `train --backend cuda` (run.sh prints both).

The same architecture and step as the CLI's reversal job (managed/NativeEngine.Cli/Jobs/TrainJob.cs):
vocabulary 19 (16 symbols, SEP, END, PAD), rows of 25 positions, batch 32, a GPT-style decoder
(learned positions, 2 pre-LN blocks of width 64 with 4 heads and a GELU MLP of 256, final LN, output
tied to the token embedding), f32 (TF32 off, PyTorch's default for matmul), AdamW (0.9, 0.999, 1e-8,
weight decay 0.01 on matrices), gradient clipping at 1, warmup-cosine learning rate from 3e-3, and
the loss read back every 10 steps as the CLI does. Batches follow the task's layout (symbols, SEP,
reversed symbols, END; the prompt and padding ignored) from Python's RNG: the speed does not depend
on which symbols are drawn. Trained tokens are the non-ignored targets, as the CLI counts them.
Compare with the CLI's rate "in the training steps alone" and its ms/step: its rate over the run
also counts evaluations, checkpoints and the first steps, which this script leaves out.
"""
import argparse
import math
import random
import time

import torch
import torch.nn.functional as F

ALPHABET, MIN_LENGTH, MAX_LENGTH = 16, 4, 12
SEP, END, PAD = ALPHABET, ALPHABET + 1, ALPHABET + 2
VOCAB, WIDTH = ALPHABET + 3, 2 * MAX_LENGTH + 1
IGNORE = -1


def batch(rng, rows, device):
    inputs = torch.full((rows, WIDTH), PAD, dtype=torch.long)
    targets = torch.full((rows, WIDTH), IGNORE, dtype=torch.long)
    trained = 0
    for row in range(rows):
        length = rng.randint(MIN_LENGTH, MAX_LENGTH)
        symbols = [rng.randrange(ALPHABET) for _ in range(length)]
        answer = symbols[::-1] + [END]
        sequence = symbols + [SEP] + answer
        inputs[row, : 2 * length + 1] = torch.tensor(sequence[: 2 * length + 1])
        targets[row, length : 2 * length + 1] = torch.tensor(answer)
        trained += length + 1
    return inputs.to(device, non_blocking=True), targets.to(device, non_blocking=True), trained


class Block(torch.nn.Module):
    def __init__(self, width, heads, mlp):
        super().__init__()
        self.heads = heads
        self.norm1 = torch.nn.LayerNorm(width)
        self.qkv = torch.nn.Linear(width, 3 * width)
        self.proj = torch.nn.Linear(width, width)
        self.norm2 = torch.nn.LayerNorm(width)
        self.up = torch.nn.Linear(width, mlp)
        self.down = torch.nn.Linear(mlp, width)

    def forward(self, x):
        B, T, C = x.shape
        q, k, v = self.qkv(self.norm1(x)).split(C, dim=2)
        q, k, v = (t.view(B, T, self.heads, C // self.heads).transpose(1, 2) for t in (q, k, v))
        attended = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.proj(attended.transpose(1, 2).reshape(B, T, C))
        return x + self.down(F.gelu(self.up(self.norm2(x))))


class Decoder(torch.nn.Module):
    def __init__(self, width=64, layers=2, heads=4, mlp=256):
        super().__init__()
        self.tokens = torch.nn.Embedding(VOCAB, width)
        self.positions = torch.nn.Embedding(WIDTH, width)
        self.blocks = torch.nn.ModuleList(Block(width, heads, mlp) for _ in range(layers))
        self.norm = torch.nn.LayerNorm(width)
        for name, parameter in self.named_parameters():
            if parameter.dim() == 2:
                std = 0.02 / math.sqrt(2 * layers) if name.endswith(("proj.weight", "down.weight")) else 0.02
                torch.nn.init.normal_(parameter, std=std)
            elif name.endswith("bias"):
                torch.nn.init.zeros_(parameter)

    def forward(self, ids, targets):
        positions = torch.arange(ids.shape[1], device=ids.device)
        x = self.tokens(ids) + self.positions(positions)
        for block in self.blocks:
            x = block(x)
        logits = self.norm(x) @ self.tokens.weight.t()
        return F.cross_entropy(logits.view(-1, VOCAB), targets.view(-1), ignore_index=IGNORE)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--warmup-steps", type=int, default=50, help="untimed steps first")
    parser.add_argument("--batch", type=int, default=32)
    args = parser.parse_args()
    device = torch.device("cuda")
    torch.manual_seed(1)
    rng = random.Random(1)
    model = Decoder().to(device)
    decay = [p for n, p in model.named_parameters() if p.dim() == 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() != 2]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": 0.01}, {"params": no_decay, "weight_decay": 0.0}],
                                  lr=3e-3, betas=(0.9, 0.999), eps=1e-8)
    warmup = max(1, args.steps // 10)

    def learning_rate(step):
        if step <= warmup:
            return 3e-3 * step / warmup
        return 0.5 * 3e-3 * (1 + math.cos(math.pi * (step - warmup) / max(1, args.steps - warmup)))

    trained_tokens, loss_value, clock = 0, float("nan"), None
    for step in range(1, args.steps + 1):
        if step == args.warmup_steps + 1:
            torch.cuda.synchronize()
            clock, trained_tokens = time.perf_counter(), 0
        inputs, targets, trained = batch(rng, args.batch, device)
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step)
        loss = model(inputs, targets)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        trained_tokens += trained
        if step % 10 == 0 or step == args.steps:
            loss_value = loss.item()
    torch.cuda.synchronize()
    seconds = time.perf_counter() - clock
    timed = args.steps - args.warmup_steps
    print(f"pytorch {torch.__version__} on {torch.cuda.get_device_name()}: the main job's model and step, f32 eager, "
          f"batch {args.batch}, {timed} timed steps after {args.warmup_steps}")
    print(f"final loss {loss_value:.4f}; {seconds:.2f} s; {trained_tokens / seconds:.0f} trained tokens/s; "
          f"{1000 * seconds / timed:.3f} ms/step")


if __name__ == "__main__":
    main()
