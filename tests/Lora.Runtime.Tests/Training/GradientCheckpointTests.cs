using Lora.Peft;
using Lora.Tuners.LoRA;
using Lora.Models;
using Lora.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace Lora.Runtime.Tests.Training;

/// <summary>Recomputing each block in the backward pass gives the gradients of the ordinary backward pass.</summary>
[Collection(TrainerCollection.Name)]
public class GradientCheckpointTests
{
    [Theory]
    [InlineData("trainer", false)] // LoRA with dropout: the recompute must redraw the same masks
    [InlineData("trainer", true)]  // full fine-tuning: gradients reach the embeddings through every checkpoint
    [InlineData("gpt2_c_attn", false)]
    [InlineData("gpt2_c_attn", true)]
    public void Same_gradients_with_and_without_checkpointing(string @case, bool full)
    {
        var dir = @case == "trainer" ? TrainerFixtures.TrainTrace("base") : Fixtures.Peft(@case, "base");
        using var model = CausalLM.FromPretrained(dir);
        if (full)
        {
            foreach (var (_, p) in model.named_parameters())
                p.requires_grad = true;
        }
        else
        {
            var targets = @case == "trainer" ? new[] { "q_proj", "v_proj", "down_proj" } : ["c_attn", "c_fc"];
            torch.manual_seed(5);
            PeftInjector.Inject(model, new LoraConfig { R = 4, LoraAlpha = 8, LoraDropout = 0.2, TargetModules = TargetModules.FromNames(targets), InitLoraWeights = "false" });
            model.MarkOnlyAdaptersTrainable();
        }

        model.train();
        var trainable = model.named_parameters().Where(p => p.parameter.requires_grad).ToList();
        using var ids = torch.randint(3, 300, [2, 12], generator: new Generator(17));

        Dictionary<string, Tensor> Grads(bool checkpointing)
        {
            model.GradientCheckpointing = checkpointing;
            foreach (var (_, p) in trainable)
                p.grad?.zero_();
            torch.manual_seed(99);
            using (var scope = NewDisposeScope())
            {
                var (sum, n) = CausalLMLoss.Sum(model.Forward(ids), ids);
                (sum / n).backward();
            }

            GradientCheckpoint.ReleasePending();
            return trainable.ToDictionary(p => p.name, p => p.parameter.grad!.clone());
        }

        var plain = Grads(false);
        var before = GradientCheckpoint.Recomputations;
        var checkpointed = Grads(true);
        Assert.Equal(2, GradientCheckpoint.Recomputations - before); // both fixture models have 2 blocks
        model.GradientCheckpointing = false;
        foreach (var (name, g) in plain)
        {
            var scale = g.abs().max().item<float>();
            var diff = (checkpointed[name] - g).abs().max().item<float>();
            Assert.True(scale > 0, $"{name}: no gradient");
            Assert.True(diff <= 1e-5 * scale + 1e-8, $"{name}: max|Δgrad| {diff:G3} (scale {scale:G3})");
        }
    }
}
