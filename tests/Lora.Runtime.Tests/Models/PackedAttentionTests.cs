using Lora.Data;
using Lora.Models;
using Lora.Peft;
using Lora.Runtime.Tests.Training;
using Lora.Training;
using Lora.Tuners.LoRA;
using TorchSharp;
using static TorchSharp.torch;

namespace Lora.Runtime.Tests.Models;

/// <summary>Packed rows give each example the logits it has alone: with the block-diagonal mask, and padding-free (no
/// mask; host position ids that restart per example mark the examples, <see cref="PackedSegments"/>).</summary>
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

    [Theory]
    [InlineData("llama_qv")]
    [InlineData("qwen2_all_linear")]
    public void Padding_free_packed_examples_do_not_see_each_other(string @case)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        using var model = CausalLM.FromPretrained(Fixtures.Peft(@case, "base"));
        Assert.True(model.SupportsPaddingFree);
        long[] a = [5, 17, 42, 8, 99];
        long[] b = [7, 250, 3];
        long[] c = [11, 12, 13, 14, 15, 16, 17, 18];
        // Row 0: a then b; row 1: one example of the same length (its positions run on: one segment).
        var ids = tensor(a.Concat(b).Concat(c).ToArray(), [2, 8]);
        var positions = tensor(new long[] { 0, 1, 2, 3, 4, 0, 1, 2, 0, 1, 2, 3, 4, 5, 6, 7 }, [2, 8]);
        var segments = PackedSegments.FromPositionIds(positions)!;
        Assert.Equal([(0, 5), (5, 3)], segments.Rows[0]);
        Assert.Equal([(0, 8)], segments.Rows[1]);

        var logits = model.Forward(ids, null, positions);
        LogitsAssert.Close(logits[..1, ..5], model.Forward(tensor(a, [1, 5])), what: "first example");
        LogitsAssert.Close(logits[..1, 5..], model.Forward(tensor(b, [1, 3])), what: "second example");
        LogitsAssert.Close(logits[1..], model.Forward(tensor(c, [1, 8])), what: "unpacked row");
    }

    [Fact]
    public void Segments_start_at_each_row_and_wherever_positions_do_not_run_on()
    {
        // An example continued from the previous row (positions 3, 4), a new one, then right padding (positions = index).
        using var positions = tensor(new long[] { 3, 4, 0, 1, 2, 5, 6 }, [1, 7]);
        Assert.Equal([(0, 2), (2, 3), (5, 2)], PackedSegments.FromPositionIds(positions)!.Rows[0]);
        using var plain = arange(6).unsqueeze(0).expand(2, 6);
        Assert.Null(PackedSegments.FromPositionIds(plain)); // every row one sequence: plain causal attention
    }

    [Fact]
    public void Packed_training_loss_and_gradients_are_equal_padding_free_and_with_the_mask()
    {
        using var model = CausalLM.FromPretrained(TrainerFixtures.TrainTrace("base"));
        torch.manual_seed(3);
        PeftInjector.Inject(model, new LoraConfig { R = 4, LoraAlpha = 8, TargetModules = TargetModules.FromNames(["q_proj", "v_proj", "down_proj"]), InitLoraWeights = "false" });
        var trainable = model.named_parameters().Where(p => p.parameter.requires_grad).ToList();
        var examples = new[] { new long[] { 5, 17, 42, 8, 99 }, [7, 250, 3, 9], [11, 12, 13], [40, 41, 42, 43, 44, 45] }
            .Select(e => new TokenizedExample(e.Select(i => (int)i).ToArray(), e.Select(i => (int)i).ToArray())).ToList();
        var rows = Packer.Pack(examples, 7).ToList();
        using var batch = new Collator(0).Collate(rows);
        Assert.NotNull(batch.PackedMask);

        (float Loss, Dictionary<string, Tensor> Grads) Step(bool paddingFree) => TrainerFixtures.LossAndGradients(trainable, () => paddingFree
            ? CausalLMLoss.ModelTokenSum(model, batch.InputIds, batch.Labels, null, batch.PositionIds)
            : CausalLMLoss.ModelTokenSum(model, batch.InputIds, batch.Labels, batch.PackedMask, batch.PositionIds));

        var masked = Step(paddingFree: false);
        var free = Step(paddingFree: true);
        Assert.Equal(masked.Loss, free.Loss, 4);
        foreach (var (name, g) in masked.Grads)
            Assert.True(g.allclose(free.Grads[name], 1e-4, 1e-6), name);
    }
}
