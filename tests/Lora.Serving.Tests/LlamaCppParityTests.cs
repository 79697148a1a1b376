using Xunit.Abstractions;

namespace Lora.Serving.Tests;

/// <summary>
/// The proof with the real client: llama.cpp (LLamaSharp 0.30.0 + its CPU backend) loads the GGUF files `lora export`
/// writes and, on the same prompts, feeds the same prompt ids, gives the same greedy tokens, and the same logits after
/// the prompt within 2e-3 of the largest logit for the F32 export. Measured: 1.4e-4 on the embedded model,
/// 8e-4 – 9.5e-4 on the fixture Llama (whose logits are small, |max| ≈ 0.43, so that is ≈ 4e-4 absolute); the
/// greedy tokens are identical everywhere. llama.cpp's CPU kernels (its own exp/rope/softmax arithmetic) are the
/// likely source; an F32 KV cache did not change the numbers.
/// </summary>
public sealed class LlamaCppParityTests(ITestOutputHelper output)
{
    private const double F32Tolerance = 2e-3;
    private const int NewTokens = 16;
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
        var dir = Serving.Export(Serving.TinyLlama);
        foreach (var prompt in Prompts)
        {
            Compare($"tiny-llama '{prompt}'", Serving.Ours(Serving.TinyLlama, prompt, NewTokens, stopToken: Eos),
                Serving.LlamaCpp(Path.Combine(dir, "model.gguf"), prompt, NewTokens, stopToken: Eos), F32Tolerance);
        }
    }

    [Theory]
    [InlineData("llama_qv", "adapter_trained")]
    [InlineData("llama_rslora_all", "adapter")]
    public void FixtureLlama_AdapterGguf_SameTokensAndLogits(string @case, string adapter)
    {
        var model = Serving.FixtureModel(@case);
        var adapterDir = Serving.Peft(@case, adapter);
        var dir = Serving.Export(model, adapterDir);
        foreach (var prompt in Prompts)
        {
            var ours = Serving.Ours(model, prompt, NewTokens, adapterDir);
            Compare($"{@case} base+adapter.gguf '{prompt}'", ours,
                Serving.LlamaCpp(Path.Combine(dir, "model.gguf"), prompt, NewTokens, Path.Combine(dir, "adapter.gguf")), F32Tolerance);
            Assert.NotEqual(Serving.Ours(model, prompt, NewTokens).Logits, ours.Logits); // the adapter does something
        }
    }

    [Fact]
    public void FixtureLlama_MergedGguf_SameTokensAndLogits()
    {
        var model = Serving.FixtureModel("llama_rslora_all");
        var adapterDir = Serving.Peft("llama_rslora_all", "adapter");
        var dir = Serving.Export(model, adapterDir, merge: true);
        Assert.False(File.Exists(Path.Combine(dir, "adapter.gguf")));
        foreach (var prompt in Prompts)
        {
            Compare($"llama_rslora_all merged '{prompt}'", Serving.Ours(model, prompt, NewTokens, adapterDir),
                Serving.LlamaCpp(Path.Combine(dir, "model.gguf"), prompt, NewTokens), F32Tolerance);
        }
    }

    [Theory]
    [InlineData("f16", 2e-2)]
    [InlineData("bf16", 5e-2)]
    [InlineData("q8_0", 5e-2)]
    public void EmbeddedModel_ReducedPrecision_StaysClose(string outType, double tolerance)
    {
        var dir = Serving.Export(Serving.TinyLlama, outType: outType);
        foreach (var prompt in Prompts)
        {
            var ours = Serving.Ours(Serving.TinyLlama, prompt, 1);
            var llama = Serving.LlamaCpp(Path.Combine(dir, "model.gguf"), prompt, 1);
            var diff = Serving.RelativeDifference(llama.Logits, ours.Logits);
            output.WriteLine($"tiny-llama {outType} '{prompt}': max |Δlogit|/max|logit| = {diff:E2}, top-1 ours {Serving.ArgMax(ours.Logits)} llama.cpp {Serving.ArgMax(llama.Logits)}");
            Assert.Equal(ours.PromptTokens, llama.PromptTokens);
            Assert.True(diff <= tolerance, $"{outType}: logits differ by {diff:E2} (tolerance {tolerance:E0})");
        }
    }
}
