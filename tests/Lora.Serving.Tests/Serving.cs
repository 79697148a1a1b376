using Lora.Cli;
using Lora.Generation;
using Lora.Models;
using Lora.Peft;
using Lora.Tokenization;
using LLama;
using LLama.Common;
using LLama.Native;
using TorchSharp;
using static TorchSharp.torch;

namespace Lora.Serving.Tests;

/// <summary>Fixture paths, the CLI, and the two engines under comparison: this toolkit (TorchSharp) and llama.cpp.</summary>
internal static class Serving
{
    public static string Root { get; } = AppContext.BaseDirectory;

    /// <summary>The embedded default model (samples/models/wordnet-llama: byte-level BPE with merges, tied embeddings).</summary>
    public static string Embedded { get; } = Path.Combine(Root, "models", "wordnet-llama");

    public static string Peft(string @case, string part) => Path.Combine(Root, "fixtures", "peft", @case, part);

    public static string TempDirectory()
    {
        var dir = Path.Combine(Path.GetTempPath(), "lora-serving-tests", Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        return dir;
    }

    /// <summary>A PEFT fixture's base model with the byte-level test tokenizer beside it (the fixtures ship no
    /// tokenizer; their 320-entry vocabulary covers its 259 ids).</summary>
    public static string FixtureModel(string @case)
    {
        var dir = TempDirectory();
        foreach (var f in Directory.GetFiles(Peft(@case, "base")))
        {
            File.Copy(f, Path.Combine(dir, Path.GetFileName(f)));
        }

        foreach (var f in Directory.GetFiles(Path.Combine(Root, "fixtures", "tokenizers", "bytes")))
        {
            File.Copy(f, Path.Combine(dir, Path.GetFileName(f)));
        }

        return dir;
    }

    public static (int Code, string Out, string Err) Cli(params string[] args)
    {
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        var code = LoraCli.Run(args, stdout, stderr);
        return (code, stdout.ToString(), stderr.ToString());
    }

    public static string Export(string model, string? adapter = null, bool merge = false, string outType = "f32")
    {
        var dir = TempDirectory();
        var args = new List<string> { "export", "--format", "gguf", "--model", model, "--out", dir, "--outtype", outType, "--device", "cpu" };
        if (adapter is not null)
        {
            args.AddRange(["--adapter", adapter]);
        }

        if (merge)
        {
            args.Add("--merge");
        }

        var (code, _, err) = Cli([.. args]);
        Assert.True(code == 0, err);
        return dir;
    }

    /// <summary>One engine's answer for a prompt: the ids it fed, the logits after the prompt, greedy tokens.</summary>
    public sealed record Run(int[] PromptTokens, float[] Logits, int[] Tokens);

    private static readonly object NativeGate = new();
    private static bool _configured;

    private static void Configure()
    {
        if (!_configured)
        {
            NativeLibraryConfig.All.WithLogCallback((_, _) => { });
            _configured = true;
        }
    }

    /// <summary>llama.cpp (LLamaSharp, CPU backend): tokenize as the GGUF says, decode the prompt, then greedy.</summary>
    public static Run LlamaCpp(string gguf, string prompt, int newTokens, string? adapterGguf = null, int? stopToken = null)
    {
        lock (NativeGate)
        {
            Configure();

            // An F32 KV cache: llama.cpp's default F16 cache alone moves logits by ~1e-4.
            var parameters = new ModelParams(gguf) { ContextSize = 256, BatchSize = 256, GpuLayerCount = 0, Threads = 2, TypeK = GGMLType.GGML_TYPE_F32, TypeV = GGMLType.GGML_TYPE_F32 };
            using var weights = LLamaWeights.LoadFromFile(parameters);
            using var context = weights.CreateContext(parameters);
            if (adapterGguf is not null)
            {
                var adapter = weights.NativeHandle.LoadLoraFromFile(adapterGguf);
                context.NativeHandle.SetLoraAdapters((adapter, 1.0f));
            }

            var ids = context.Tokenize(prompt, addBos: true, special: true);
            var batch = new LLamaBatch();
            for (var i = 0; i < ids.Length; i++)
            {
                batch.Add(ids[i], i, LLamaSeqId.Zero, i == ids.Length - 1);
            }

            context.Decode(batch);
            var first = context.NativeHandle.GetLogitsIth(batch.TokenCount - 1).ToArray();
            var logits = first;
            var tokens = new List<int>();
            for (var step = 0; step < newTokens; step++)
            {
                var best = ArgMax(logits);
                tokens.Add(best);
                if (best == stopToken)
                {
                    break;
                }

                batch.Clear();
                batch.Add(best, ids.Length + step, LLamaSeqId.Zero, true);
                context.Decode(batch);
                logits = context.NativeHandle.GetLogitsIth(0).ToArray();
            }

            return new Run(ids.Select(t => (int)t).ToArray(), first, [.. tokens]);
        }
    }

    /// <summary>llama.cpp's tokenization of each text (bos as the GGUF says, special tokens parsed).</summary>
    public static int[][] LlamaCppTokenize(string gguf, string[] texts)
    {
        lock (NativeGate)
        {
            Configure();
            var parameters = new ModelParams(gguf) { ContextSize = 64, GpuLayerCount = 0, Threads = 1 };
            using var weights = LLamaWeights.LoadFromFile(parameters);
            return texts.Select(t => weights.Tokenize(t, add_bos: true, special: true, System.Text.Encoding.UTF8).Select(id => (int)id).ToArray()).ToArray();
        }
    }

    /// <summary>This toolkit: the HF checkpoint (and PEFT adapter) in fp32, the same prompt, greedy with the KV cache.</summary>
    public static Run[] Ours(string modelDir, string[] prompts, int newTokens, string? adapterDir = null, int? stopToken = null)
    {
        var tokenizer = HfTokenizer.Load(modelDir);
        using var model = CausalLM.FromPretrained(modelDir);
        if (adapterDir is not null)
        {
            PeftAdapter.Load(model, adapterDir);
        }

        model.eval();
        return prompts.Select(p => Ours(model, tokenizer.Encode(p), newTokens, stopToken)).ToArray();
    }

    private static Run Ours(CausalLM model, int[] ids, int newTokens, int? stopToken)
    {
        float[] logits;
        using (NewDisposeScope())
        using (no_grad())
        {
            var input = tensor(ids.Select(i => (long)i).ToArray(), [1, ids.Length]);
            logits = model.Forward(input)[0, -1].to(ScalarType.Float32).data<float>().ToArray();
        }

        var result = TokenGenerator.Generate(model, [ids], new GenerationOptions
        {
            MaxNewTokens = newTokens,
            StopTokenIds = stopToken is { } s ? [s] : [],
        })[0];
        return new Run(ids, logits, [.. result.Tokens]);
    }

    public static int ArgMax(float[] v)
    {
        var best = 0;
        for (var i = 1; i < v.Length; i++)
        {
            if (v[i] > v[best])
            {
                best = i;
            }
        }

        return best;
    }

    /// <summary>max |a − b| over the vocabulary, relative to max |b|.</summary>
    public static double RelativeDifference(float[] a, float[] b)
    {
        Assert.Equal(b.Length, a.Length);
        double diff = 0, scale = 0;
        for (var i = 0; i < a.Length; i++)
        {
            diff = Math.Max(diff, Math.Abs(a[i] - b[i]));
            scale = Math.Max(scale, Math.Abs(b[i]));
        }

        return diff / scale;
    }
}
