using Xunit.Abstractions;

namespace Lora.Serving.Tests;

/// <summary>
/// The proof with the real client: llama.cpp (LLamaSharp 0.30.0 + its CPU backend) loads the GGUF files `lora export`
/// writes and, on the same prompts, feeds the same prompt ids, gives the same greedy tokens, and the same logits after
/// the prompt within 5e-3 of the largest logit for the F32 export. Measured: ≤ 1.2e-3 on the embedded model; on the
/// fixture Llama (logits small, |max| ≈ 0.43) 8e-4 at 25 prompt tokens and 2.1e-3 at 37, so the gap grows with the
/// prompt. The greedy tokens are identical everywhere. Asking LLamaSharp for an F32 KV cache did not change the
/// numbers; the source inside llama.cpp's CPU path (attention / rope arithmetic) is not pinned down.
/// </summary>
public sealed class LlamaCppParityTests(ITestOutputHelper output)
{
    private const double F32Tolerance = 5e-3;
    private const int NewTokens = 12;
    private const int Eos = 257; // the byte tokenizer's </s>

    private static readonly string[] Prompts = ["The capital of Norway is", "The word harbor written backwards is", "Hi"];

    private void Compare(string label, Serving.Run ours, Serving.Run llama, double tolerance)
    {
        var diff = Serving.RelativeDifference(llama.Logits, ours.Logits);
        output.WriteLine($"{label}: prompt {ours.PromptTokens.Length} ids, tokens ours [{string.Join(",", ours.Tokens)}] llama.cpp [{string.Join(",", llama.Tokens)}], top-1 logit ours {ours.Logits.Max():F6} llama.cpp {llama.Logits.Max():F6}, max |Δlogit|/max|logit| = {diff:E2}");
        Assert.Equal(ours.PromptTokens, llama.PromptTokens);
        Assert.Equal(Serving.ArgMax(ours.Logits), Serving.ArgMax(llama.Logits));
        Assert.True(diff <= tolerance, $"{label}: logits differ by {diff:E2} (tolerance {tolerance:E0})");
        Assert.Equal(ours.Tokens, llama.Tokens);
    }

    [Fact]
    public void EmbeddedModel_F32_SameTokensAndLogits()
    {
        var dir = Serving.Export(Serving.Embedded);
        var ours = Serving.Ours(Serving.Embedded, Prompts, NewTokens, stopToken: Eos);
        for (var i = 0; i < Prompts.Length; i++)
        {
            Compare($"wordnet-llama '{Prompts[i]}'", ours[i],
                Serving.LlamaCpp(Path.Combine(dir, "model.gguf"), Prompts[i], NewTokens, stopToken: Eos), F32Tolerance);
        }
    }

    [Fact]
    public void EmbeddedModel_LlamaCppTokenizesAsWeDo()
    {
        // The embedded tokenizer's Split regex (category runs) is exported as llama.cpp's "superbpe" pre-tokenizer
        // (GgufExport.CategoryRunsPre): whitespace runs, newlines, punctuation runs, digits, quotes, non-ASCII.
        string[] texts =
        [
            "Below is an instruction that describes a task. Write a response that appropriately completes the request.\n\n### Instruction:\nWhat is the opposite of \"ascend\"?\n\n### Response:",
            "  two  spaces\t\ttabs \n\n\n \n end ",
            "'sun' isn't 12345 3.14 -- (a.k.a. \"x\")!!!???",
            "naïve café — “quoted” Ærø 中文 😀 ²",
            "</s> and <s> in text",
        ];
        var tokenizer = Lora.Tokenization.HfTokenizer.Load(Serving.Embedded);
        var gguf = Path.Combine(Serving.Export(Serving.Embedded), "model.gguf");
        var llama = Serving.LlamaCppTokenize(gguf, texts);
        for (var i = 0; i < texts.Length; i++)
        {
            Assert.Equal(tokenizer.Encode(texts[i]), llama[i]);
        }

        Assert.Contains(tokenizer.Encode(texts[1]), id => tokenizer.IdToToken(id) == "ĊĊ"); // a whitespace merge is exercised
    }

    [Theory]
    [InlineData("llama_qv", "adapter_trained")]
    [InlineData("llama_rslora_all", "adapter")]
    public void FixtureLlama_AdapterGguf_SameTokensAndLogits(string @case, string adapter)
    {
        var model = Serving.FixtureModel(@case);
        var adapterDir = Serving.Peft(@case, adapter);
        var dir = Serving.Export(model, adapterDir);
        var ours = Serving.Ours(model, Prompts, NewTokens, adapterDir);
        for (var i = 0; i < Prompts.Length; i++)
        {
            Compare($"{@case} base+adapter.gguf '{Prompts[i]}'", ours[i],
                Serving.LlamaCpp(Path.Combine(dir, "model.gguf"), Prompts[i], NewTokens, Path.Combine(dir, "adapter.gguf")), F32Tolerance);
        }

        // The adapter does something: llama.cpp without it computes other logits.
        var bare = Serving.LlamaCpp(Path.Combine(dir, "model.gguf"), Prompts[0], 1);
        Assert.True(Serving.RelativeDifference(bare.Logits, ours[0].Logits) > 100 * F32Tolerance);
    }

    [Fact]
    public void FixtureLlama_MergedGguf_SameTokensAndLogits()
    {
        var model = Serving.FixtureModel("llama_rslora_all");
        var adapterDir = Serving.Peft("llama_rslora_all", "adapter");
        var dir = Serving.Export(model, adapterDir, merge: true);
        Assert.False(File.Exists(Path.Combine(dir, "adapter.gguf")));
        var ours = Serving.Ours(model, Prompts, NewTokens, adapterDir);
        for (var i = 0; i < Prompts.Length; i++)
        {
            Compare($"llama_rslora_all merged '{Prompts[i]}'", ours[i],
                Serving.LlamaCpp(Path.Combine(dir, "model.gguf"), Prompts[i], NewTokens), F32Tolerance);
        }
    }

    [Theory]
    [InlineData("f16", 2e-2)]
    [InlineData("q8_0", 5e-2)]
    public void EmbeddedModel_ReducedPrecision_StaysClose(string outType, double tolerance)
    {
        var dir = Serving.Export(Serving.Embedded, outType: outType);
        var all = Serving.Ours(Serving.Embedded, Prompts, 1);
        for (var i = 0; i < Prompts.Length; i++)
        {
            var (prompt, ours) = (Prompts[i], all[i]);
            var llama = Serving.LlamaCpp(Path.Combine(dir, "model.gguf"), prompt, 1);
            var diff = Serving.RelativeDifference(llama.Logits, ours.Logits);
            output.WriteLine($"wordnet-llama {outType} '{prompt}': max |Δlogit|/max|logit| = {diff:E2}, top-1 ours {Serving.ArgMax(ours.Logits)} llama.cpp {Serving.ArgMax(llama.Logits)}");
            Assert.Equal(ours.PromptTokens, llama.PromptTokens);
            Assert.True(diff <= tolerance, $"{outType}: logits differ by {diff:E2} (tolerance {tolerance:E0})");
        }
    }
}
