using Lora.Models;
using Lora.SafeTensors;
using TorchSharp;
using static TorchSharp.torch;

namespace Lora.Runtime.Tests.Models;

/// <summary>Incremental decoding and padding give the logits of the plain full-sequence pass.</summary>
public class KvCacheTests
{
    private static (CausalLM Model, Tensor Ids) Load(string @case)
    {
        var model = CausalLM.FromPretrained(Fixtures.Peft(@case, "base"));
        using var expected = SafeTensorsFile.Open(Path.Combine(Fixtures.Peft(@case), "expected.safetensors"));
        return (model, expected.Load("input_ids"));
    }

    [Theory]
    [InlineData("llama_qv")]
    [InlineData("qwen2_all_linear")]
    [InlineData("gpt2_c_attn")]
    public void Incremental_decoding_matches_the_full_pass(string @case)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var (model, ids) = Load(@case);
        using var _ = model;
        var t = ids.shape[1];
        var full = model.Forward(ids);                                    // (B, T, V)

        using var cache = model.NewCache();
        const int prefix = 5;
        var first = model.Forward(ids.narrow(1, 0, prefix), cache: cache);
        LogitsAssert.Close(first, full.narrow(1, 0, prefix), what: "prefix");
        Assert.Equal(prefix, cache.Length);
        for (var i = prefix; i < t; i++)
        {
            var step = model.Forward(ids.narrow(1, i, 1), cache: cache); // (B, 1, V)
            LogitsAssert.Close(step, full.narrow(1, i, 1), what: $"position {i}");
        }

        Assert.Equal(t, cache.Length);
    }

    [Theory]
    [InlineData("llama_qv")]
    [InlineData("qwen2_all_linear")]
    [InlineData("gpt2_c_attn")]
    public void Left_padding_gives_the_unpadded_logits(string @case)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var (model, ids) = Load(@case);
        using var _ = model;
        var t = ids.shape[1];
        const int pad = 4;
        var shortRow = ids.narrow(0, 0, 1).narrow(1, 0, t - pad);         // (1, T - pad)
        var alone = model.Forward(shortRow);                              // (1, T - pad, V)
        var fullRow = model.Forward(ids.narrow(0, 1, 1));                 // (1, T, V)

        // Row 0: four pad tokens (id 0) then the short sequence; row 1: the full second sequence.
        var padded = cat([cat([zeros(1, pad, ScalarType.Int64), shortRow], 1), ids.narrow(0, 1, 1)], 0);
        var mask = ones(2, t, ScalarType.Int64);
        mask[0, TensorIndex.Slice(0, pad)] = zeros(pad, ScalarType.Int64);
        var batch = model.Forward(padded, mask);                          // (2, T, V)
        LogitsAssert.Close(batch.narrow(0, 0, 1).narrow(1, pad, t - pad), alone, what: "padded row");
        LogitsAssert.Close(batch.narrow(0, 1, 1), fullRow, what: "unpadded row");
        Assert.False(batch.isnan().any().item<bool>(), "padding positions must not produce NaN");

        // Generation continues from the padded prompt with the mask growing by one column per step.
        using var cache = model.NewCache();
        model.Forward(padded.narrow(1, 0, t - 1), mask.narrow(1, 0, t - 1), cache: cache);
        var step = model.Forward(padded.narrow(1, t - 1, 1), mask, cache: cache); // (2, 1, V)
        LogitsAssert.Close(step.narrow(0, 0, 1), alone.narrow(1, t - pad - 1, 1), what: "padded row, cached step");
        LogitsAssert.Close(step.narrow(0, 1, 1), fullRow.narrow(1, t - 1, 1), what: "unpadded row, cached step");
    }

    [Theory]
    [InlineData("llama_qv")]
    [InlineData("gpt2_c_attn")]
    public void Forward_passes_leave_no_live_tensors_behind(string @case)
    {
        var (model, ids) = Load(@case);
        using var _ = model;
        using var __ = ids;
        using var noGrad = no_grad();
        using var cache = model.NewCache();
        using var mask = ones(ids.shape[0], ids.shape[1], ScalarType.Int64);

        void Step(int i)
        {
            using var step = ids.narrow(1, i, 1);
            using var seen = mask.narrow(1, 0, i + 1);
            using var logits = model.Forward(step, seen, cache: cache);
        }

        Step(0);
        var live = DisposeScopeManager.Statistics.ThreadTotalLiveCount;
        for (var i = 1; i < 6; i++)
            Step(i);
        Assert.Equal(live, DisposeScopeManager.Statistics.ThreadTotalLiveCount); // the cache replaces its tensors
        using (var full = model.Forward(ids))
        {
        }

        var afterFull = DisposeScopeManager.Statistics.ThreadTotalLiveCount;
        using (var again = model.Forward(ids))
        {
        }

        Assert.Equal(afterFull, DisposeScopeManager.Statistics.ThreadTotalLiveCount);
    }
}
