using System.Text.Json;
using Lora.Data.Preference;
using Lora.Models;
using Lora.Peft;
using Lora.Tokenization;
using Lora.Tuners.LoRA;
using TorchSharp;
using static TorchSharp.torch;

namespace Lora.Runtime.Tests.Alignment;

/// <summary>Models, data and reference values shared by the alignment tests.</summary>
internal static class AlignmentFixtures
{
    /// <summary>The tiny random Llama of the PEFT fixtures (hidden 64, 2 layers, vocab 320).</summary>
    public static string BaseModel => Fixtures.Peft("llama_qv", "base");

    /// <summary>A LoRA adapter for it (q_proj, v_proj, r 8, non-zero B): a policy that differs from the base.</summary>
    public static string Adapter => Fixtures.Peft("llama_qv", "adapter");

    /// <summary>The byte-level tokenizer (256 bytes, &lt;s&gt; 256, &lt;/s&gt; 257, &lt;pad&gt; 258).</summary>
    public static HfTokenizer Tokenizer() => HfTokenizer.Load(Path.Combine(Fixtures.Root, "tokenizers", "bytes"));

    public const int Pad = 258;

    public const int Eos = 257;

    /// <summary>The TRL reference values of tests/fixtures/alignment/reference.json.</summary>
    public static JsonElement Reference(string section) =>
        JsonDocument.Parse(File.ReadAllText(Path.Combine(Fixtures.Root, "alignment", "reference.json"))).RootElement.GetProperty(section);

    public static double[] Doubles(JsonElement e) => e.EnumerateArray().Select(v => v.GetDouble()).ToArray();

    public static double[,] Matrix(JsonElement e)
    {
        var rows = e.EnumerateArray().Select(Doubles).ToArray();
        var m = new double[rows.Length, rows[0].Length];
        for (var i = 0; i < rows.Length; i++)
            for (var j = 0; j < rows[0].Length; j++)
                m[i, j] = rows[i][j];
        return m;
    }

    public static Tensor Tensor1(JsonElement e) => tensor(Doubles(e));

    public static Tensor Tensor2(JsonElement e) => tensor(Matrix(e));

    /// <summary>A fresh base model with a LoRA adapter (zero B unless <paramref name="randomB"/>), seeded.</summary>
    public static (CausalLM Model, LoraConfig Config) LoraModel(bool randomB = false, int seed = 3, double dropout = 0, string[]? modulesToSave = null, TargetModules? targets = null)
    {
        var model = CausalLM.FromPretrained(BaseModel);
        var config = new LoraConfig { R = 4, LoraAlpha = 8, LoraDropout = dropout, TargetModules = targets ?? TargetModules.FromNames(["q_proj", "v_proj"]), ModulesToSave = modulesToSave };
        torch.manual_seed(seed);
        PeftInjector.Inject(model, randomB ? config with { InitLoraWeights = "false" } : config);
        return (model, config);
    }

    /// <summary>
    /// A learnable preference task in byte ids: prompt "Q:" + a letter, the chosen completion is made of vowels,
    /// the rejected one of consonants (then eos). Held-out pairs (another seed) use new strings.
    /// </summary>
    public static List<PreferenceExample> VowelPairs(int count, int seed)
    {
        var random = new Random(seed);
        const string vowels = "aeiou", consonants = "bcdfgklmnprst";
        string Word(string letters, int n) => new(Enumerable.Range(0, n).Select(_ => letters[random.Next(letters.Length)]).ToArray());
        int[] Bytes(string s) => s.Select(c => (int)c).ToArray();
        return Enumerable.Range(0, count).Select(_ =>
        {
            var prompt = Bytes("Q:" + (char)('a' + random.Next(26)));
            var n = 2 + random.Next(3);
            return new PreferenceExample([256, .. prompt], [.. Bytes(Word(vowels, n)), Eos], [.. Bytes(Word(consonants, 2 + random.Next(3))), Eos]);
        }).ToList();
    }

    /// <summary>log p of tokens ids[from..] given the rest, computed on the host in double from one unpadded
    /// forward pass: Σ_{t ≥ from} log softmax(logits[t − 1])[ids[t]].</summary>
    public static double HandLogp(CausalLM model, int[] ids, int from, bool disableAdapters = false)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        using var off = disableAdapters ? model.DisableAdapters() : null;
        var logits = model.Forward(tensor(ids.Select(i => (long)i).ToArray(), [1, ids.Length]))[0].to(ScalarType.Float64); // (T, V)
        var values = logits.data<double>().ToArray();
        var v = (int)logits.shape[1];
        double sum = 0;
        for (var t = Math.Max(1, from); t < ids.Length; t++)
        {
            var row = values.AsSpan((t - 1) * v, v);
            var max = double.NegativeInfinity;
            foreach (var x in row)
                max = Math.Max(max, x);
            double z = 0;
            foreach (var x in row)
                z += Math.Exp(x - max);
            sum += row[ids[t]] - max - Math.Log(z);
        }

        return sum;
    }

    public static double LogSigmoid(double x) => x >= 0 ? -Math.Log(1 + Math.Exp(-x)) : x - Math.Log(1 + Math.Exp(x));

    /// <summary>|a − b| ≤ tol·max(1, |b|).</summary>
    public static void Close(double expected, double actual, double tol, string what) =>
        Assert.True(Math.Abs(actual - expected) <= tol * Math.Max(1, Math.Abs(expected)), $"{what}: expected {expected:G10}, got {actual:G10}");
}
