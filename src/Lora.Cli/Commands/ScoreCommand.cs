using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using Lora.Data.Preference;
using Lora.Tokenization;
using Lora.Training.Objectives.Reward;
using TorchSharp;
using static TorchSharp.torch;

namespace Lora.Cli.Commands;

/// <summary>
/// <c>lora score</c>: the rewards a reward model (<c>lora reward</c>'s output) gives: to texts (<c>--text</c>,
/// repeatable; the eos token is appended as reward training appends it), or to the pairs of a preference file
/// (<c>--data</c>: both rewards per pair, then accuracy and mean margin).
/// </summary>
internal static class ScoreCommand
{
    private static readonly CultureInfo Inv = CultureInfo.InvariantCulture;

    public static Command Create(TextWriter stdout, TextWriter stderr)
    {
        var model = CommonOptions.Model();
        var adapter = new Option<string>("--adapter") { Description = "The reward model: a SEQ_CLS PEFT adapter directory (lora reward's --out).", Required = true };
        var data = new Option<string?>("--data") { Description = "A preference file: prints r_chosen and r_rejected per pair, then accuracy and margin." };
        var text = new Option<string[]>("--text") { Description = "A text to score (repeatable).", AllowMultipleArgumentsPerToken = false };
        var template = new Option<string?>("--template") { Description = "Chat template for conversational data: chatml (default) or llama2." };
        var batchSize = new Option<int>("--batch-size") { Description = "Sequences per forward pass.", DefaultValueFactory = _ => 8 };
        var json = CommonOptions.Json();
        var device = CommonOptions.Device();
        var dtype = CommonOptions.DType();
        var quantize = new QuantizeOptions();
        var command = new Command("score", "Print the rewards a reward model gives to texts or preference pairs.") { model, adapter, data, text, template, batchSize, json, device, dtype };
        foreach (var option in quantize.All)
            command.Options.Add(option);
        command.SetAction(parse =>
        {
            var texts = parse.GetValue(text) ?? [];
            var dataPath = parse.GetValue(data);
            if ((dataPath is null) == (texts.Length == 0))
                throw new LoraException("give --data FILE or --text T (one of them).");
            if (dataPath is not null && !File.Exists(dataPath))
                throw new LoraException($"{dataPath}: file not found.");
            var modelDir = parse.GetValue(model)!;
            if (!Directory.Exists(modelDir))
                throw new LoraException($"{modelDir}: model directory not found.");
            var quantization = quantize.Read(parse, parse.GetValue(device)!);
            var dev = Backend.TorchRuntime.Initialize(parse.GetValue(device)!, notice => stderr.WriteLine($"warning: {notice}"));
            var tokenizer = new Lazy<HfTokenizer>(() => HfTokenizer.Load(modelDir));
            using var rm = RewardModel.Load(modelDir, parse.GetValue(adapter)!, dev, ModelSession.ParseDType(parse.GetValue(dtype)!, dev), quantization, w => stderr.WriteLine($"warning: {w}"));
            var pad = tokenizer.IsValueCreated || dataPath is null || PreferenceReader.Read(dataPath).First().Kind != PreferenceKind.Tokens
                ? Data.Collator.PadIdOf(tokenizer.Value)
                : rm.Config.PadTokenId ?? rm.Config.EosTokenIds.FirstOrDefault();
            var size = parse.GetValue(batchSize);
            if (dataPath is null)
            {
                var eos = tokenizer.Value.EosTokenId;
                var rows = texts.Select(t =>
                {
                    var ids = tokenizer.Value.Encode(t, addSpecialTokens: true);
                    return eos is { } e && (ids.Length == 0 || ids[^1] != e) ? [.. ids, e] : ids;
                }).ToList();
                var rewards = Score(rm, rows, pad, size);
                if (parse.GetValue(json))
                {
                    stdout.WriteLine(JsonSerializer.Serialize(new { rewards, pad_token_id = pad }));
                }
                else
                {
                    for (var i = 0; i < texts.Length; i++)
                        stdout.WriteLine($"{rewards[i].ToString("F4", Inv)}\t{texts[i]}");
                }

                return 0;
            }

            var pairs = AlignmentData.Pairs(dataPath, tokenizer, parse.GetValue(template) is { } t ? Data.PromptTemplate.Parse(t) : null).Pairs;
            var chosen = Score(rm, pairs.Select(p => p.ChosenSequence).ToList(), pad, size);
            var rejected = Score(rm, pairs.Select(p => p.RejectedSequence).ToList(), pad, size);
            var accuracy = chosen.Zip(rejected).Count(x => x.First > x.Second) / (double)pairs.Count;
            var margin = chosen.Zip(rejected).Average(x => x.First - x.Second);
            if (parse.GetValue(json))
            {
                stdout.WriteLine(JsonSerializer.Serialize(new
                {
                    pairs = chosen.Zip(rejected).Select(x => new { chosen = x.First, rejected = x.Second }),
                    accuracy,
                    margin,
                    pad_token_id = pad,
                }));
            }
            else
            {
                stdout.WriteLine("r_chosen\tr_rejected\tlocation");
                for (var i = 0; i < pairs.Count; i++)
                    stdout.WriteLine($"{chosen[i].ToString("F4", Inv)}\t{rejected[i].ToString("F4", Inv)}\t{pairs[i].Location}");
                stdout.WriteLine($"accuracy {accuracy.ToString("F4", Inv)}  margin {margin.ToString("F4", Inv)}  ({pairs.Count} pairs)");
            }

            return 0;
        });
        return command;
    }

    private static double[] Score(Models.CausalLM model, IReadOnlyList<int[]> rows, int pad, int batchSize)
    {
        var device = model.parameters().First().device;
        var result = new List<double>(rows.Count);
        using var noGrad = no_grad();
        foreach (var chunk in rows.Chunk(batchSize))
        {
            using var scope = NewDisposeScope();
            var t = chunk.Max(r => r.Length);
            var ids = new long[chunk.Length * t];
            var mask = new long[chunk.Length * t];
            for (var b = 0; b < chunk.Length; b++)
            {
                for (var i = 0; i < t; i++)
                {
                    ids[b * t + i] = i < chunk[b].Length ? chunk[b][i] : pad;
                    mask[b * t + i] = i < chunk[b].Length ? 1 : 0;
                }
            }

            var rewards = RewardModel.Rewards(model, tensor(ids, [chunk.Length, t], device: device), tensor(mask, [chunk.Length, t], device: device), pad);
            result.AddRange(rewards.to(ScalarType.Float64).cpu().data<double>().ToArray());
        }

        return [.. result];
    }
}
