using System.CommandLine;
using System.Text.Json;
using Lora.Modules;
using Lora.Modules.Bases;
using Lora.Quantization;
using Lora.Peft;
using Lora.Tuners.LoRA;

namespace Lora.Cli.Commands;

/// <summary><c>lora inspect</c>: the module tree's adaptable layers, which of them a target plan selects, what a method
/// (or a loaded adapter) adds besides linear-layer adapters (virtual tokens, key/value prefixes, bottleneck slots), and
/// the parameter counts in PEFT's format — the run-time view of what <c>[Lora(Targets = ...)]</c> checks at build time.</summary>
internal static class InspectCommand
{
    public static Command Create(TextWriter stdout, TextWriter stderr)
    {
        var model = CommonOptions.Model();
        var adapter = CommonOptions.Adapter();
        var targets = new Option<string?>("--targets") { Description = "A target plan to try: leaf names (q_proj,v_proj), a regex on the full path, or all-linear." };
        var r = new Option<int>("--r") { Description = "Rank for --targets.", DefaultValueFactory = _ => 8 };
        var method = new Option<string?>("--method") { Description = "A method to try (prefix, ptuning-v2, prompt, ptuning, adapter) with its options: shows what it adds." };
        var methodOptions = new MethodOptions();
        var json = CommonOptions.Json();
        var command = new Command("inspect", "Show the adaptable layers, the layers a target plan selects, what a method adds, and parameter counts.")
        {
            model, adapter, targets, r, method, json,
        };
        foreach (var option in methodOptions.All)
            command.Options.Add(option);
        var quantize = new QuantizeOptions();
        foreach (var option in quantize.All)
            command.Options.Add(option);
        command.SetAction(parse =>
        {
            using var session = ModelSession.Open(parse.GetValue(model)!, parse.GetValue(adapter), merge: false, "cpu", "fp32", stderr, quantize.Read(parse, "cpu"));
            var m = session.Model;
            var added = new List<(PeftConfig Config, string Name)>();
            if (session.Adapter is { } loaded)
                added.Add((loaded, PeftAdapter.DefaultName));
            if (parse.GetValue(targets) is { } plan)
            {
                var config = new LoraConfig { R = parse.GetValue(r), LoraAlpha = 2 * parse.GetValue(r), TargetModules = TargetSpec.Parse(plan) };
                PeftInjector.Inject(m, config, adapterName: "inspect");
            }
            else if (parse.GetValue(method) is { } tried)
            {
                var name = tried.ToLowerInvariant();
                if (!MethodOptions.Builds(name))
                    throw new LoraException($"--method '{tried}' is not one of prefix, ptuning-v2, prompt, ptuning, adapter (try LoRA with --targets and --r).");
                methodOptions.Check(parse, name, packing: false, gradientCheckpointing: false);
                var config = methodOptions.Config(parse, name, Path.GetFullPath(parse.GetValue(model)!))!;
                PeftInjector.Inject(m, config, adapterName: "inspect");
                added.Add((config, "inspect"));
            }
            else if (methodOptions.Given(parse))
            {
                throw new LoraException("the method options (--virtual-tokens, --adapter-size, ...) need --method.");
            }

            var adds = added.Select(a => PeftMethods.For(a.Config).Describe(m, a.Config, a.Name)).Where(d => d is not null).Select(d => d!).ToList();

            m.MarkOnlyAdaptersTrainable();
            var layers = m.named_modules()
                .Where(x => x.module is LinearLayer)
                .Select(x => (Path: x.name, Layer: (LinearLayer)x.module))
                .ToList();
            var rows = layers.Select(l => new
            {
                path = l.Path,
                type = l.Layer.GetType().Name,
                @in = l.Layer.InFeatures,
                @out = l.Layer.OutFeatures,
                adapters = l.Layer.Adapters.Names.ToArray(),
                methods = l.Layer.Adapters.Names.Select(n => l.Layer.Adapter(n).MethodName).Distinct().ToArray(),
                storage = l.Layer.Base is QuantizedLinear q ? q.Type.Name() : FourBitWeight.DTypeName(l.Layer.Base.DType),
                bits_per_param = l.Layer.Base is QuantizedLinear qb ? qb.BitsPerParameter : 8.0 * (l.Layer.Base.DType == TorchSharp.torch.ScalarType.Float32 ? 4 : 2),
            }).ToList();
            var (trainable, all) = m.ParameterCounts();
            if (parse.GetValue(json))
            {
                stdout.WriteLine(JsonSerializer.Serialize(new
                {
                    model_type = m.Config.ModelType,
                    layers = rows,
                    targets = rows.Where(x => x.adapters.Length > 0).Select(x => x.path),
                    trainable_params = trainable,
                    all_params = all,
                    quantization = QuantizeOptions.Describe(m),
                    adds,
                    summary = m.TrainableParametersSummary(),
                }));
                return 0;
            }

            stdout.WriteLine($"{m.GetType().Name} ({m.Config.ModelType}, {m.Config.NumLayers} layers); linear layers:");
            foreach (var row in rows)
            {
                var mark = row.adapters.Length > 0 ? $"  <- {string.Join("/", row.methods)} ({string.Join(", ", row.adapters)})" : string.Empty;
                var storage = row.storage is "nf4" or "fp4" or "int8" ? $" [{row.storage}, {row.bits_per_param.ToString("F3", System.Globalization.CultureInfo.InvariantCulture)} bits/param]" : string.Empty;
                stdout.WriteLine($"  {row.path}  {row.type} {row.@in}→{row.@out}{storage}{mark}");
            }

            if (QuantizeOptions.Describe(m) is { } stored)
                stdout.WriteLine(stored);

            foreach (var line in adds)
                stdout.WriteLine($"adds: {line}");
            stdout.WriteLine(m.TrainableParametersSummary());
            return 0;
        });
        return command;
    }
}
