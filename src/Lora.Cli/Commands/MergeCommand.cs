using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using Lora.Models;
using Lora.Peft;
using Lora.Quantization;
using TorchSharp;
using static TorchSharp.torch;

namespace Lora.Cli.Commands;

/// <summary>
/// <c>lora merge</c>: folds a PEFT adapter into the base weights and writes a plain Hugging Face checkpoint
/// (config.json + safetensors) that transformers loads without PEFT. On a quantized base (a bitsandbytes checkpoint,
/// or <c>--quantize</c> as the adapter was trained: QLoRA) the base is dequantized first and the merge is exact in
/// <c>--dtype</c>; <c>--requantize</c> merges into the quantized weights instead and writes a quantized checkpoint
/// (PEFT's behaviour, which rounds). Either way the change of the outputs is measured and printed.
/// </summary>
internal static class MergeCommand
{
    private const int ProbeTokens = 64;

    public static Command Create(TextWriter stdout, TextWriter stderr)
    {
        var model = CommonOptions.Model();
        var adapter = new Option<string>("--adapter") { Description = "PEFT adapter directory to merge.", Required = true };
        var output = new Option<string>("--out") { Description = "Output directory (must not exist or be empty).", Required = true };
        var shard = new Option<long>("--max-shard-size-mb") { Description = "Split weights into shards of at most this many MB.", DefaultValueFactory = _ => 5000 };
        var requantize = new Option<bool>("--requantize") { Description = "Quantized base: merge into the quantized weights and write a quantized checkpoint (rounds) instead of a dense one." };
        var json = CommonOptions.Json();
        var device = CommonOptions.Device();
        var dtype = CommonOptions.DType("fp32"); // the merged checkpoint's dtype: exact by default
        var command = new Command("merge", "Merge an adapter into its base model and save a Hugging Face checkpoint.")
        {
            model, adapter, output, shard, requantize, json, device, dtype,
        };
        var quantize = new QuantizeOptions();
        foreach (var option in quantize.All)
            command.Options.Add(option);
        command.SetAction(parse =>
        {
            var modelDir = parse.GetValue(model)!;
            using var session = ModelSession.Open(modelDir, parse.GetValue(adapter)!, merge: false, parse.GetValue(device)!, parse.GetValue(dtype)!, stderr, quantize.Read(parse, parse.GetValue(device)!));
            var m = session.Model;
            var quantized = m.Quantization;
            if (parse.GetValue(requantize) && quantized is null)
                throw new LoraException("--requantize needs a quantized base: a bitsandbytes checkpoint, or --quantize nf4|fp4|int8.");

            using var scope = NewDisposeScope();
            Tensor? probe = null, before = null;
            if (quantized is not null)
            {
                // What the quantized model with its adapter computes, to measure what the merge changes.
                probe = randint(m.Config.VocabSize, [1, Math.Min(ProbeTokens, m.Config.MaxPositions)], generator: new Generator(0), dtype: ScalarType.Int64);
                using (no_grad())
                    before = m.Forward(probe).to(ScalarType.Float32);
                if (!parse.GetValue(requantize))
                    ModelQuantizer.Dequantize(m);
            }

            m.MergeAndUnload(warnings: w => stderr.WriteLine($"warning: {w}"));
            double? change = null;
            if (probe is not null)
            {
                using (no_grad())
                {
                    var after = m.Forward(probe).to(ScalarType.Float32);
                    change = (after - before!).abs().max().item<float>() / before!.abs().max().item<float>();
                }
            }

            var outDir = parse.GetValue(output)!;
            var files = PretrainedWriter.Save(m, modelDir, outDir, parse.GetValue(shard) * 1_000_000);
            if (parse.GetValue(json))
            {
                stdout.WriteLine(JsonSerializer.Serialize(new
                {
                    output = Path.GetFullPath(outDir),
                    files,
                    quantization = m.Quantization?.ToJson(),
                    relative_logit_change = change,
                }));
                return 0;
            }

            stdout.WriteLine($"merged the {PeftMethods.For(session.Adapter!).DisplayName} adapter ({(session.Adapter as TunerConfig)?.TargetModules}) into {modelDir}; wrote {outDir}: {string.Join(", ", files)}");
            if (change is { } c)
            {
                var how = m.Quantization is null
                    ? $"the {quantized!.Type.Name()} base was dequantized to {parse.GetValue(dtype)} and merged exactly"
                    : $"merged into the {quantized!.Type.Name()} weights and re-quantized";
                stdout.WriteLine($"{how}: the merged model's logits differ from the quantized model with its adapter by at most {(c * 100).ToString("G3", CultureInfo.InvariantCulture)}% of the largest logit ({ProbeTokens}-token probe)");
            }

            return 0;
        });
        return command;
    }
}
