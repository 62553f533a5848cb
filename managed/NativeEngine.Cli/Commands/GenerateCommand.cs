using System.CommandLine;
using NativeEngine.Cli.Jobs;
using NativeEngine.Data;
using NativeEngine.Inference;
using NativeEngine.Tokenizers;

namespace NativeEngine.Cli.Commands;

/// <summary><c>generate</c>: continues a prompt with a trained checkpoint (fp32 or int8), using the key/value cache.</summary>
internal static class GenerateCommand
{
    public static Command Create()
    {
        var context = new ContextOptionsBinder();
        var checkpoint = new Option<DirectoryInfo>("--checkpoint") { Description = "Checkpoint directory (such as runs/reversal/checkpoint).", Required = true, HelpName = "DIR" };
        var prompt = new Option<string?>("--prompt") { Description = "The prompt. Reversal models: symbols such as \"cabd\" (default: the first held-out examples). Text models: any text.", HelpName = "TEXT" };
        var maxTokens = new Option<int>("--max-tokens") { Description = "Most tokens to generate.", DefaultValueFactory = _ => 64, HelpName = "N" };
        var temperature = new Option<float>("--temperature") { Description = "Sampling temperature; 0 is greedy.", DefaultValueFactory = _ => 0f, HelpName = "T" };
        var topK = new Option<int>("--top-k") { Description = "Sample among the k most likely tokens; 0 is all.", DefaultValueFactory = _ => 0, HelpName = "K" };
        var topP = new Option<float>("--top-p") { Description = "Sample among the most likely tokens whose probabilities sum to p.", DefaultValueFactory = _ => 1f, HelpName = "P" };
        var seed = new Option<ulong>("--seed") { Description = "Seed of the sampling.", DefaultValueFactory = _ => 1, HelpName = "N" };
        var stop = new Option<string[]>("--stop") { Description = "Stop after this token id (repeatable); reversal models also stop at their end symbol.", HelpName = "ID", AllowMultipleArgumentsPerToken = true };
        var attention = new Option<FileInfo?>("--attention-map") { Description = "Also write a heatmap PNG of the attention over the prompt and the generated tokens.", HelpName = "FILE" };
        var layer = new Option<int>("--layer") { Description = "Layer of --attention-map.", DefaultValueFactory = _ => 0, HelpName = "N" };
        var head = new Option<int>("--head") { Description = "Head of --attention-map.", DefaultValueFactory = _ => 0, HelpName = "N" };
        var command = new Command("generate", "Generate tokens after a prompt with a trained checkpoint: greedy, or sampled with temperature, top-k and top-p.");
        context.AddTo(command);
        foreach (var option in new Option[] { checkpoint, prompt, maxTokens, temperature, topK, topP, seed, stop, attention, layer, head })
        {
            command.Add(option);
        }
        command.SetAction(parse =>
        {
            using var ctx = Context.Create(context.Bind(parse));
            using var model = CheckpointModel.Load(ctx, parse.GetValue(checkpoint)!.FullName);
            var stops = ParseStops(parse.GetValue(stop) ?? [], model.Config.VocabularySize);
            var options = new GenerationOptions
            {
                MaxNewTokens = parse.GetValue(maxTokens),
                Temperature = parse.GetValue(temperature),
                TopK = parse.GetValue(topK),
                TopP = parse.GetValue(topP),
                Seed = parse.GetValue(seed),
                StopTokens = stops,
            };
            try
            {
                options.Validate(model.Config.VocabularySize);
            }
            catch (ArgumentException e)
            {
                throw new CliException(e.Message);
            }
            var map = parse.GetValue(attention)?.FullName;
            return JobConfig.IsReversal(model.Checkpoint)
                ? GenerateReversal(model, JobConfig.ReadReversalTask(model.Checkpoint), parse.GetValue(prompt), options, map, parse.GetValue(layer), parse.GetValue(head))
                : GenerateText(model, JobConfig.ReadTokenizer(model.Checkpoint), parse.GetValue(prompt), options, map, parse.GetValue(layer), parse.GetValue(head));
        });
        return command;
    }

    private static int[] ParseStops(string[] values, int vocabulary)
    {
        var ids = new int[values.Length];
        for (var i = 0; i < values.Length; i++)
        {
            if (!int.TryParse(values[i], System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out ids[i]) || ids[i] >= vocabulary)
            {
                throw new CliException($"--stop takes token ids from 0 to {vocabulary - 1}; got '{values[i]}'");
            }
        }
        return ids;
    }

    private static int GenerateReversal(CheckpointModel model, ReversalTask task, string? prompt, GenerationOptions options, string? map, int layer, int head)
    {
        options = options with { StopTokens = [.. options.StopTokens, task.EndId] };
        var prompts = prompt is null
            ? task.HeldOut.Take(3).Select(e => e.Prompt.ToArray()).ToList()
            : [ParseReversalPrompt(task, prompt)];
        var generator = new Generator(model.Autoregressive);
        int[] last = [];
        foreach (var ids in prompts)
        {
            var generated = Generate(generator, ids, options);
            Console.WriteLine($"{task.Format(ids)} {task.Format(generated)}");
            last = [.. ids, .. generated];
        }
        WriteAttentionMap(model, last, map, layer, head, ids => ids.Select(id => task.Format([id])).ToArray());
        return ExitCodes.Success;
    }

    private static int[] ParseReversalPrompt(ReversalTask task, string prompt)
    {
        var symbols = prompt.Where(c => !char.IsWhiteSpace(c) && c != '|').ToArray();
        if (task.AlphabetSize > 26 || symbols.Length < 1 || symbols.Length > task.Options.MaxLength
            || symbols.Any(c => c < 'a' || c >= 'a' + task.AlphabetSize))
        {
            throw new CliException(
                $"--prompt for this reversal model is 1 to {task.Options.MaxLength} symbols from 'a' to '{(char)('a' + Math.Min(task.AlphabetSize, 26) - 1)}', such as \"cabd\"; got \"{prompt}\"");
        }
        return [.. symbols.Select(c => c - 'a'), task.SeparatorId];
    }

    private static int GenerateText(CheckpointModel model, ITokenizer tokenizer, string? prompt, GenerationOptions options, string? map, int layer, int head)
    {
        if (string.IsNullOrEmpty(prompt))
        {
            throw new CliException("--prompt is required for a text model");
        }
        var ids = tokenizer.Encode(prompt);
        if (ids.Length == 0)
        {
            throw new CliException("--prompt encodes to no tokens");
        }
        var generator = new Generator(model.Autoregressive);
        Console.Write(prompt);
        var generated = Generate(generator, ids, options, token => Console.Write(tokenizer.Decode([token])));
        Console.WriteLine();
        WriteAttentionMap(model, [.. ids, .. generated], map, layer, head, tokens => tokens.Select(id => tokenizer.Decode([id])).ToArray());
        return ExitCodes.Success;
    }

    private static int[] Generate(Generator generator, int[] prompt, GenerationOptions options, Action<int>? onToken = null)
    {
        try
        {
            return generator.Generate(prompt, options, onToken).Tokens;
        }
        catch (ArgumentException e)
        {
            throw new CliException(e.Message);
        }
    }

    private static void WriteAttentionMap(CheckpointModel model, int[] ids, string? path, int layer, int head, Func<int[], string[]> labels)
    {
        if (path is null)
        {
            return;
        }
        var fp32 = model.Fp32 ?? throw new CliException("--attention-map needs an fp32 checkpoint (this one is int8)");
        var length = Math.Min(ids.Length, fp32.MaxSequenceLength);
        var window = ids[..length];
        float[] weights;
        try
        {
            weights = fp32.AttentionWeights(window, layer, head);
        }
        catch (ArgumentOutOfRangeException e)
        {
            throw new CliException(e.Message);
        }
        var names = labels(window);
        NativeEngine.Training.AttentionHeatmap.SavePng(path, weights, length, length, names, names,
            $"layer {layer}, head {head}");
        Console.WriteLine($"attention map: {path}");
    }
}
