using NativeEngine.Checkpoints;
using NativeEngine.Data;
using NativeEngine.Inference;
using NativeEngine.Models;

namespace NativeEngine.Cli.Jobs;

/// <summary>
/// A model loaded from a checkpoint directory for <c>generate</c>, <c>eval</c> and <c>quantize</c>: the fp32
/// decoder-only transformer or its int8 form, whichever the checkpoint holds.
/// </summary>
/// <remarks>Ownership: owns the model and the loaded checkpoint; the caller owns the context.</remarks>
internal sealed class CheckpointModel : IDisposable
{
    private CheckpointModel(LoadedCheckpoint checkpoint, DecoderOnlyTransformer? fp32, QuantizedLanguageModel? int8)
    {
        Checkpoint = checkpoint;
        Fp32 = fp32;
        Int8 = int8;
    }

    public LoadedCheckpoint Checkpoint { get; }

    public DecoderOnlyTransformer? Fp32 { get; }

    public QuantizedLanguageModel? Int8 { get; }

    public IAutoregressiveModel Autoregressive => (IAutoregressiveModel?)Fp32 ?? Int8!;

    public TransformerConfig Config => Fp32?.Config ?? Int8!.Config;

    public string Kind => Fp32 is not null ? "fp32" : "int8";

    /// <summary>Loads the checkpoint at <paramref name="path"/>.</summary>
    /// <exception cref="CliException">The directory holds no checkpoint, a corrupt one, or an unknown architecture.</exception>
    public static CheckpointModel Load(Context context, string path)
    {
        if (!CheckpointDirectory.Exists(path))
        {
            throw new CliException($"no checkpoint in '{path}' (train one with `train --out DIR`, which saves DIR/checkpoint)", ExitCodes.InputError);
        }
        LoadedCheckpoint? checkpoint = null;
        try
        {
            checkpoint = CheckpointDirectory.Load(path);
            var architecture = ModelCheckpoint.ReadArchitecture(checkpoint);
            return architecture switch
            {
                DecoderOnlyTransformer.Architecture =>
                    new CheckpointModel(checkpoint, Eval(DecoderOnlyTransformer.FromCheckpoint(context, checkpoint)), null),
                QuantizedLanguageModel.Architecture =>
                    new CheckpointModel(checkpoint, null, QuantizedLanguageModel.FromCheckpoint(context, checkpoint)),
                _ => throw new CliException(
                    $"'{path}' holds a '{architecture}' model; generate, eval and quantize work with " +
                    $"'{DecoderOnlyTransformer.Architecture}' and '{QuantizedLanguageModel.Architecture}' checkpoints", ExitCodes.InputError),
            };
        }
        catch (CheckpointException e)
        {
            checkpoint?.Dispose();
            throw new CliException(e.Message, ExitCodes.InputError);
        }
        catch
        {
            checkpoint?.Dispose();
            throw;
        }
    }

    /// <summary>The mean full-softmax loss over a batch, nothing recorded.</summary>
    public float EvaluateLoss(TokenBatch batch) => Fp32?.EvaluateLoss(batch) ?? Int8!.EvaluateLoss(batch);

    /// <summary>The logits of every position, [B, T, V], owned by the current scope.</summary>
    public Tensor Logits(Tensor ids) => Fp32?.Logits(ids) ?? Int8!.Logits(ids);

    public void Dispose()
    {
        Fp32?.Dispose();
        Int8?.Dispose();
        Checkpoint.Dispose();
    }

    private static DecoderOnlyTransformer Eval(DecoderOnlyTransformer model)
    {
        model.Eval();
        return model;
    }
}
