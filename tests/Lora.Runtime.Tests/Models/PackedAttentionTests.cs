using Lora.Data;
using Lora.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace Lora.Runtime.Tests.Models;

/// <summary>Packed rows (block-diagonal mask, restarting positions) give each example the logits it has alone.</summary>
public class PackedAttentionTests
{
    [Theory]
    [InlineData("llama_qv")]
    [InlineData("qwen2_all_linear")]
    [InlineData("gpt2_c_attn")]
    public void Packed_examples_do_not_see_each_other(string @case)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        using var model = CausalLM.FromPretrained(Fixtures.Peft(@case, "base"));
        long[] a = [5, 17, 42, 8, 99];
        long[] b = [7, 250, 3];
        var packed = tensor(a.Concat(b).ToArray(), [1, a.Length + b.Length]);
        var segments = tensor(Enumerable.Repeat(0L, a.Length).Concat(Enumerable.Repeat(1L, b.Length)).ToArray(), [1, a.Length + b.Length]);
        var positions = tensor(Enumerable.Range(0, a.Length).Concat(Enumerable.Range(0, b.Length)).Select(i => (long)i).ToArray(), [1, a.Length + b.Length]);
        var mask = PackedAttentionMask.FromSegments(segments);

        var logits = model.Forward(packed, mask, positions);
        var alone = model.Forward(tensor(a, [1, a.Length]));
        var aloneB = model.Forward(tensor(b, [1, b.Length]));
        LogitsAssert.Close(logits[.., ..a.Length], alone, what: "first example");
        LogitsAssert.Close(logits[.., a.Length..], aloneB, what: "second example");
    }
}
