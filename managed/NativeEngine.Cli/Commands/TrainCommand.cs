using System.CommandLine;
using NativeEngine.Cli.Jobs;
using NativeEngine.Models;
using NativeEngine.Training;

namespace NativeEngine.Cli.Commands;

/// <summary><c>train</c>: the main job. With no options it trains a small decoder-only transformer on the
/// built-in reversal task; with <c>--data FILE</c>, a language model on a text file.</summary>
internal static class TrainCommand
{
    public static Command Create()
    {
        var context = new ContextOptionsBinder();
        var data = new Option<FileInfo?>("--data") { Description = "Train a language model on this text file instead of the built-in reversal task.", HelpName = "FILE" };
        var tokenizer = new Option<string>("--tokenizer")
        {
            Description = "Tokenizer of --data: byte (built in) or cl100k (100k-token BPE).",
            DefaultValueFactory = _ => "byte",
            HelpName = "byte|cl100k",
        };
        tokenizer.AcceptOnlyFromAmong("byte", "cl100k");
        var loss = new Option<string>("--loss") { Description = "Training loss: full softmax or sampled softmax (evaluation is always full).", DefaultValueFactory = _ => "full", HelpName = "full|sampled" };
        loss.AcceptOnlyFromAmong("full", "sampled");
        var samples = new Option<int>("--samples") { Description = "Classes sampled per step with --loss sampled.", DefaultValueFactory = _ => 1024, HelpName = "N" };
        var steps = new Option<long?>("--steps") { Description = "Optimizer steps (default: 3000 for the reversal task, 300 for --data).", HelpName = "N" };
        var batch = new Option<int?>("--batch-size") { Description = "Sequences per step (default: 32 reversal, 16 text).", HelpName = "N" };
        var lr = new Option<double?>("--lr") { Description = "Peak learning rate (default: 3e-3 reversal, 1e-3 text).", HelpName = "X" };
        var warmup = new Option<long?>("--warmup") { Description = "Warmup steps (default: 10% of the steps).", HelpName = "N" };
        var schedule = new Option<string>("--schedule") { Description = "Learning-rate schedule.", DefaultValueFactory = _ => "cosine", HelpName = "cosine|inverse-sqrt|constant" };
        schedule.AcceptOnlyFromAmong("cosine", "inverse-sqrt", "constant");
        var dim = new Option<int?>("--dim") { Description = "Model width C (default: 64 reversal, 128 text).", HelpName = "N" };
        var layers = new Option<int?>("--layers") { Description = "Transformer blocks (default: 2).", HelpName = "N" };
        var heads = new Option<int?>("--heads") { Description = "Attention heads (default: 4).", HelpName = "N" };
        var kvHeads = new Option<int?>("--kv-heads") { Description = "Key/value heads, dividing --heads (default: --heads).", HelpName = "N" };
        var mlp = new Option<int?>("--mlp") { Description = "MLP hidden width (default: 4 x --dim).", HelpName = "N" };
        var seqLen = new Option<int>("--seq-len") { Description = "Tokens per training sequence with --data.", DefaultValueFactory = _ => 64, HelpName = "N" };
        var dropout = new Option<float>("--dropout") { Description = "Dropout probability.", DefaultValueFactory = _ => 0f, HelpName = "P" };
        var evalEvery = new Option<long?>("--eval-every") { Description = "Evaluate every N steps (default: steps / 5).", HelpName = "N" };
        var checkpointEvery = new Option<long?>("--checkpoint-every") { Description = "Save a checkpoint every N steps (default: steps / 4; the last step is always saved).", HelpName = "N" };
        var outDir = new Option<DirectoryInfo?>("--out") { Description = "Run directory: checkpoint/, loss_curve.csv, loss_curve.png (default: runs/reversal or runs/<data name>, numbered when taken).", HelpName = "DIR" };
        var resume = new Option<bool>("--resume") { Description = "Continue the checkpoint in --out." };
        var overwrite = new Option<bool>("--overwrite") { Description = "Replace the checkpoint in --out with a new run." };
        var seed = new Option<ulong>("--seed") { Description = "Seed of the initialization, data order, dropout and sampling.", DefaultValueFactory = _ => 1, HelpName = "N" };

        var command = new Command("train", "Train a transformer: with no options, a small model on the built-in reversal task (the main job); with --data FILE, a language model on a text file.");
        context.AddTo(command);
        foreach (var option in new Option[] { data, tokenizer, loss, samples, steps, batch, lr, warmup, schedule, dim, layers, heads, kvHeads, mlp, seqLen, dropout, evalEvery, checkpointEvery, outDir, resume, overwrite, seed })
        {
            command.Add(option);
        }
        command.SetAction(parse =>
        {
            var request = new TrainRequest
            {
                Context = context.Bind(parse),
                DataFile = parse.GetValue(data)?.FullName,
                Tokenizer = parse.GetValue(tokenizer)!,
                Loss = parse.GetValue(loss) == "sampled" ? LossKind.Sampled : LossKind.Full,
                Samples = parse.GetValue(samples),
                Steps = parse.GetValue(steps),
                BatchSize = parse.GetValue(batch),
                LearningRate = parse.GetValue(lr),
                WarmupSteps = parse.GetValue(warmup),
                Schedule = parse.GetValue(schedule) switch
                {
                    "inverse-sqrt" => LearningRateScheduleKind.InverseSquareRoot,
                    "constant" => LearningRateScheduleKind.Constant,
                    _ => LearningRateScheduleKind.WarmupCosine,
                },
                ModelDimension = parse.GetValue(dim),
                Layers = parse.GetValue(layers),
                Heads = parse.GetValue(heads),
                KvHeads = parse.GetValue(kvHeads),
                MlpDimension = parse.GetValue(mlp),
                SequenceLength = parse.GetValue(seqLen),
                Dropout = parse.GetValue(dropout),
                EvalEvery = parse.GetValue(evalEvery),
                CheckpointEvery = parse.GetValue(checkpointEvery),
                OutDirectory = parse.GetValue(outDir)?.FullName,
                Resume = parse.GetValue(resume),
                Overwrite = parse.GetValue(overwrite),
                Seed = parse.GetValue(seed),
            };
            return TrainJob.Run(request);
        });
        return command;
    }
}
