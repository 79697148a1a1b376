using System.CommandLine;
using System.Text.Json;
using Lora.Peft;
using Lora.Models;

namespace Lora.Cli.Commands;

/// <summary><c>lora merge</c>: folds a PEFT adapter into the base weights and writes a plain Hugging Face checkpoint
/// (config.json + safetensors) that transformers loads without PEFT.</summary>
internal static class MergeCommand
{
    public static Command Create(TextWriter stdout, TextWriter stderr)
    {
        var model = CommonOptions.Model();
        var adapter = new Option<string>("--adapter") { Description = "PEFT adapter directory to merge.", Required = true };
        var output = new Option<string>("--out") { Description = "Output directory (must not exist or be empty).", Required = true };
        var shard = new Option<long>("--max-shard-size-mb") { Description = "Split weights into shards of at most this many MB.", DefaultValueFactory = _ => 5000 };
        var json = CommonOptions.Json();
        var device = CommonOptions.Device();
        var dtype = CommonOptions.DType();
        var command = new Command("merge", "Merge an adapter into its base model and save a Hugging Face checkpoint.")
        {
            model, adapter, output, shard, json, device, dtype,
        };
        command.SetAction(parse =>
        {
            var modelDir = parse.GetValue(model)!;
            using var session = ModelSession.Open(modelDir, parse.GetValue(adapter)!, merge: true, parse.GetValue(device)!, parse.GetValue(dtype)!, stderr);
            var outDir = parse.GetValue(output)!;
            var files = PretrainedWriter.Save(session.Model, modelDir, outDir, parse.GetValue(shard) * 1_000_000);
            if (parse.GetValue(json))
                stdout.WriteLine(JsonSerializer.Serialize(new { output = Path.GetFullPath(outDir), files }));
            else
                stdout.WriteLine($"merged the {PeftMethods.For(session.Adapter!).DisplayName} adapter ({(session.Adapter as TunerConfig)?.TargetModules}) into {modelDir}; wrote {outDir}: {string.Join(", ", files)}");
            return 0;
        });
        return command;
    }
}
