using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Lora.Generation;
using Lora.Models;
using static TorchSharp.torch;

namespace Lora.Bench;

/// <summary>
/// Decode speed, like for like with <c>../shared/gpu/generate_bench.py</c>: a random Llama, greedy decoding with the
/// KV cache, batch B of random prompts of P tokens, N new tokens each (no stop token: every sequence runs to N), one
/// short warm-up generation of 8 tokens first. Prints new tokens per second over the timed generation (prefill
/// included, as the reference times it).
/// </summary>
internal static class GenerateBench
{
    public static int Run(string[] args)
    {
        var s = new BenchShape(args, generation: true);
        manual_seed(0);
        using var model = new LlamaForCausalLM(s.Config(s.Prompt + s.New + 8), s.DType, s.Device);
        model.InitializeWeights();
        model.eval();
        var random = new Random(0);
        var prompts = Enumerable.Range(0, s.Batch)
            .Select(_ => (IReadOnlyList<int>)Enumerable.Range(0, s.Prompt).Select(_ => random.Next(1, s.Vocab)).ToArray())
            .ToList();
        var memory = new PeakMemory(s.Device);
        TokenGenerator.Generate(model, prompts, new GenerationOptions { MaxNewTokens = 8 });
        BenchShape.Synchronize(s.Device);
        memory.Reset();
        var sw = Stopwatch.StartNew();
        var output = TokenGenerator.Generate(model, prompts, new GenerationOptions { MaxNewTokens = s.New });
        BenchShape.Synchronize(s.Device);
        var seconds = sw.Elapsed.TotalSeconds;
        memory.Sample();
        var newTokens = output.Sum(o => o.Tokens.Count);
        var result = new Dictionary<string, object?>
        {
            ["system"] = "lora-dotnet-generate",
            ["device"] = s.Device.ToString(),
            ["dtype"] = s.DType.ToString(),
            ["layers"] = s.Layers, ["hidden"] = s.Hidden, ["inter"] = s.Inter, ["heads"] = s.Heads, ["kv_heads"] = s.KvHeads,
            ["vocab"] = s.Vocab, ["batch"] = s.Batch, ["prompt"] = s.Prompt, ["new"] = newTokens / s.Batch,
            ["threads"] = get_num_threads(),
            ["seconds"] = Math.Round(seconds, 3),
            ["new_tokens_per_s"] = Math.Round(newTokens / seconds, 1),
            ["peak_bytes"] = memory.Peak,
            ["peak_method"] = memory.Method,
        };
        Console.WriteLine(s.Json
            ? JsonSerializer.Serialize(result)
            : string.Join(", ", result.Select(kv => $"{kv.Key} {Convert.ToString(kv.Value, CultureInfo.InvariantCulture)}")));
        return 0;
    }
}
