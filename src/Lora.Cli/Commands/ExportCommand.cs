using System.CommandLine;
using System.Text.Json;
using Lora.Gguf;
using Lora.Tokenization;

namespace Lora.Cli.Commands;

/// <summary>
/// <c>lora export --format gguf</c>: the model (base, or merged with <c>--merge</c>) as OUT/model.gguf, the LoRA
/// adapter alone as OUT/adapter.gguf (with <c>--adapter</c> and no <c>--merge</c>), and an Ollama Modelfile
/// (FROM + ADAPTER), for llama.cpp, LLamaSharp and Ollama. See docs/serving.md.
/// </summary>
internal static class ExportCommand
{
    public static Command Create(TextWriter stdout, TextWriter stderr)
    {
        var format = new Option<string>("--format") { Description = "Output format: gguf.", Required = true };
        var model = CommonOptions.Model();
        var output = new Option<string>("--out") { Description = "Output directory (created if missing; model.gguf, adapter.gguf and Modelfile are replaced).", Required = true };
        var adapter = CommonOptions.Adapter();
        var merge = new Option<bool>("--merge") { Description = "Merge the adapter into the model (writes only model.gguf); needed for DoRA, IA3 and other methods llama.cpp cannot apply." };
        var outType = new Option<string>("--outtype") { Description = "Tensor type of the model's matrices: f32, f16, bf16 or q8_0 (norms stay f32; q8_0 rows not a multiple of 32 fall back to f16). The adapter is f32.", DefaultValueFactory = _ => "f16" };
        var json = CommonOptions.Json();
        var device = CommonOptions.Device();
        var command = new Command("export", "Export a model and adapter for llama.cpp / LLamaSharp / Ollama (GGUF).")
        {
            format, model, output, adapter, merge, outType, json, device,
        };
        command.SetAction(parse =>
        {
            if (!string.Equals(parse.GetValue(format), "gguf", StringComparison.OrdinalIgnoreCase))
            {
                throw new LoraException($"--format '{parse.GetValue(format)}' is not supported (supported: gguf).");
            }

            var type = GgufExport.ParseOutType(parse.GetValue(outType)!);
            var modelDir = parse.GetValue(model)!;
            var adapterDir = parse.GetValue(adapter);
            var doMerge = parse.GetValue(merge);
            using var session = ModelSession.Open(modelDir, adapterDir, doMerge, parse.GetValue(device)!, "fp32", stderr);
            var outDir = parse.GetValue(output)!;
            Directory.CreateDirectory(outDir);

            string? adapterFile = null;
            int? adaptedLayers = null;
            if (adapterDir is not null && !doMerge)
            {
                // Checked before the (larger) model file is written, so a refused adapter writes nothing.
                adapterFile = Path.Combine(outDir, "adapter.gguf");
                adaptedLayers = GgufExport.WriteLoraAdapter(session.Model, session.Adapter!, adapterFile);
            }

            var modelFile = Path.Combine(outDir, "model.gguf");
            var types = GgufExport.WriteModel(session.Model, modelDir, modelFile, type);
            var tokenizer = HfTokenizer.Load(modelDir);
            var eos = tokenizer.EosTokenId is { } e ? tokenizer.IdToToken(e) : null;
            var modelfile = Path.Combine(outDir, "Modelfile");
            AtomicFile.WriteAllText(modelfile, GgufExport.Modelfile("model.gguf", adapterFile is null ? null : "adapter.gguf", eos));

            if (parse.GetValue(json))
            {
                stdout.WriteLine(JsonSerializer.Serialize(new
                {
                    model = Path.GetFullPath(modelFile),
                    adapter = adapterFile is null ? null : Path.GetFullPath(adapterFile),
                    modelfile = Path.GetFullPath(modelfile),
                    outtype = parse.GetValue(outType)!.ToLowerInvariant(),
                    tensors = types.Count,
                    adapted_layers = adaptedLayers,
                    merged = doMerge,
                }));
            }
            else
            {
                stdout.WriteLine($"wrote {modelFile} ({types.Count} tensors, {parse.GetValue(outType)}; {new FileInfo(modelFile).Length / 1e6:0.00} MB){(doMerge ? " with the adapter merged" : "")}");
                if (adapterFile is not null)
                {
                    stdout.WriteLine($"wrote {adapterFile} (LoRA on {adaptedLayers} layers, scaling baked for llama.cpp's alpha/r)");
                }

                stdout.WriteLine($"wrote {modelfile} (ollama create NAME -f {modelfile})");
            }

            return 0;
        });
        return command;
    }
}
