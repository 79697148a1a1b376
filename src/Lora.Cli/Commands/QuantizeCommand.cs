using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using Lora.Backend;
using Lora.Models;
using Lora.Quantization;

namespace Lora.Cli.Commands;

/// <summary>
/// <c>lora quantize</c>: writes a bitsandbytes-format pre-quantized checkpoint (<c>weight</c> codes, <c>absmax</c>,
/// <c>quant_map</c>, nested scales, the <c>quant_state</c> JSON; <c>weight</c> + <c>SCB</c> for int8) with
/// transformers' <c>quantization_config</c> in config.json, quantizing one weight at a time as it reads the dense
/// checkpoint. transformers, and this toolkit, load the result as quantized without being told. See docs/quantization.md.
/// </summary>
internal static class QuantizeCommand
{
    public static Command Create(TextWriter stdout, TextWriter stderr)
    {
        var model = CommonOptions.Model();
        var format = new Option<string>("--format") { Description = "nf4 (QLoRA), fp4, or int8 (LLM.int8()).", Required = true };
        var doubleQuant = new Option<bool>("--double-quant") { Description = "4-bit: quantize the block scales too (the default)." };
        var noDoubleQuant = new Option<bool>("--no-double-quant") { Description = "4-bit: keep the block scales in fp32 (4.5 bits/param)." };
        var blocksize = new Option<int>("--blocksize") { Description = "4-bit: elements per block scale (32…4096).", DefaultValueFactory = _ => 64 };
        var compute = new Option<string>("--compute-dtype") { Description = "4-bit: bnb_4bit_compute_dtype recorded in config.json (bf16, fp16, fp32).", DefaultValueFactory = _ => "bf16" };
        var dtype = new Option<string>("--dtype") { Description = "The dtype the weights are read in before quantizing, and the dense tensors (norms, embeddings, lm_head) are written in: fp32, bf16 or fp16.", DefaultValueFactory = _ => "bf16" };
        var output = new Option<string>("--out") { Description = "Output directory (must not exist or be empty).", Required = true };
        var shard = new Option<long>("--max-shard-size-mb") { Description = "Split weights into shards of at most this many MB.", DefaultValueFactory = _ => 5000 };
        var device = CommonOptions.Device();
        var json = CommonOptions.Json();
        var command = new Command("quantize", "Quantize a Hugging Face checkpoint to a bitsandbytes-format 4-bit or 8-bit one.")
        {
            model, format, doubleQuant, noDoubleQuant, blocksize, compute, dtype, output, shard, device, json,
        };
        command.SetAction(parse =>
        {
            var type = QuantizationTypes.Parse(parse.GetValue(format)!) ?? throw new LoraException($"--format '{parse.GetValue(format)}' is not one of nf4, fp4, int8.");
            if (parse.GetValue(doubleQuant) && parse.GetValue(noDoubleQuant))
                throw new LoraException("--double-quant and --no-double-quant conflict: give one.");
            if (type == QuantizationType.Int8 && (parse.GetValue(doubleQuant) || parse.GetResult(blocksize) is { Implicit: false } || parse.GetResult(compute) is { Implicit: false }))
                throw new LoraException("--format int8 has one fp32 scale per row: --double-quant, --blocksize and --compute-dtype are 4-bit options.");
            var config = new QuantizationConfig
            {
                Type = type,
                DoubleQuant = type != QuantizationType.Int8 && !parse.GetValue(noDoubleQuant),
                Blocksize = parse.GetValue(blocksize),
                ComputeDType = QuantizeOptions.ParseCompute(parse.GetValue(compute)!, "--compute-dtype"),
            };
            config.Validate();
            var modelDir = parse.GetValue(model)!;
            if (!Directory.Exists(modelDir))
                throw new LoraException($"{modelDir}: model directory not found.");
            if (QuantizationConfig.FromModelDirectory(modelDir) is { } already)
                throw new LoraException($"{Path.Combine(modelDir, ModelConfigLoader.FileName)}: the checkpoint is already quantized ({already}); quantize the dense checkpoint it came from.");
            var outDir = parse.GetValue(output)!;
            var dev = TorchRuntime.Initialize(parse.GetValue(device)!, notice => stderr.WriteLine($"warning: {notice}"));
            using var quantized = CausalLM.FromPretrained(modelDir, ModelSession.ParseDType(parse.GetValue(dtype)!), dev, config);
            var files = PretrainedWriter.Save(quantized, modelDir, outDir, parse.GetValue(shard) * 1_000_000);
            var layers = ModelQuantizer.QuantizedLayers(quantized).ToList();
            var elements = layers.Sum(l => l.Base.InFeatures * l.Base.OutFeatures);
            var bits = elements == 0 ? 0 : layers.Sum(l => l.Base.BitsPerParameter * l.Base.InFeatures * l.Base.OutFeatures) / elements;
            var bytes = files.Sum(f => new FileInfo(Path.Combine(outDir, f)).Length);
            if (parse.GetValue(json))
            {
                stdout.WriteLine(JsonSerializer.Serialize(new
                {
                    output = Path.GetFullPath(outDir),
                    files,
                    quantization = config.ToJson(),
                    quantized_layers = layers.Count,
                    bits_per_param = bits,
                    weight_bytes = bytes,
                }));
            }
            else
            {
                stdout.WriteLine($"quantized {layers.Count} linear layers of {modelDir} as {config}: {bits.ToString("F3", CultureInfo.InvariantCulture)} bits/param (stored tensors); lm_head and non-linear weights stay {parse.GetValue(dtype)}");
                stdout.WriteLine($"wrote {outDir}: {string.Join(", ", files)} ({(bytes / 1e6).ToString("F2", CultureInfo.InvariantCulture)} MB)");
            }

            return 0;
        });
        return command;
    }
}
