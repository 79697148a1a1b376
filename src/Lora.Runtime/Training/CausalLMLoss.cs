using Lora.Backend;
using Lora.Models;
using Lora.Modules;
using Lora.Modules.Bases;
using TorchSharp;
using static TorchSharp.torch;
using static TorchSharp.torch.autograd;

namespace Lora.Training;

/// <summary>
/// transformers' <c>ForCausalLMLoss</c> as a sum: logits upcast to fp32, labels shifted left by one (position t
/// predicts token t+1), cross-entropy summed over positions whose label is not -100. Callers divide by the token
/// count of the whole (accumulated) batch, which makes gradient accumulation exact.
/// </summary>
public static class CausalLMLoss
{
    /// <summary>Summed token loss (a scalar tensor, differentiable) and the number of tokens it covers. Counting the
    /// tokens reads a value back from the device (a synchronisation): the training step uses <see cref="TokenSum"/>,
    /// its token count being known on the host from the collated batch (<see cref="Data.Batch.LabelTokens"/>).</summary>
    /// <param name="logits"><c>(B, T, V)</c>; with prompt tuning or P-tuning <c>(B, n + T, V)</c>: the first
    /// <c>n</c> are the virtual positions, whose labels are -100 (PEFT pads the labels in front, so the last virtual
    /// position predicts the first token).</param>
    /// <param name="labels"><c>(B, T)</c> int64, -100 = ignored.</param>
    public static (Tensor Sum, long Tokens) Sum(Tensor logits, Tensor labels)
    {
        using var scope = NewDisposeScope();
        labels = WithVirtualLabels(logits, labels);
        var tokens = labels[.., 1..].ne(Data.TokenizedExample.IgnoreIndex).sum().item<long>();
        return (TokenSum(logits, labels).MoveToOuterDisposeScope(), tokens);
    }

    /// <summary>Summed token loss (a scalar fp32 tensor, differentiable), without reading anything back.</summary>
    /// <param name="logits"><c>(B, T, V)</c>, or <c>(B, n + T, V)</c> with virtual positions in front (see
    /// <see cref="Sum"/>).</param>
    /// <param name="labels"><c>(B, T)</c> int64, -100 = ignored.</param>
    public static Tensor TokenSum(Tensor logits, Tensor labels)
    {
        using var scope = NewDisposeScope();
        labels = WithVirtualLabels(logits, labels);
        var vocab = logits.shape[^1];
        var shiftedLogits = logits[.., ..^1, ..].to(ScalarType.Float32).reshape(-1, vocab);
        var shiftedLabels = labels[.., 1..].reshape(-1);
        var sum = nn.functional.cross_entropy(shiftedLogits, shiftedLabels, ignore_index: Data.TokenizedExample.IgnoreIndex, reduction: nn.Reduction.Sum);
        return sum.MoveToOuterDisposeScope();
    }

    /// <summary>The labels padded in front with -100 for the virtual positions of prompt tuning / P-tuning, when the
    /// logits are longer than the labels (PeftModelForCausalLM.forward: <c>labels = cat(full((B, n), -100), labels)</c>);
    /// otherwise the labels themselves.</summary>
    private static Tensor WithVirtualLabels(Tensor logits, Tensor labels)
    {
        if (logits.shape[1] <= labels.shape[1])
            return labels;
        var virtualTokens = logits.shape[1] - labels.shape[1];
        return cat([full(labels.shape[0], virtualTokens, Data.TokenizedExample.IgnoreIndex, labels.dtype, labels.device), labels], 1);
    }

    /// <summary>
    /// <see cref="TokenSum"/> of <paramref name="model"/>'s logits, computed without the logits of the whole batch when
    /// the model allows it (its <see cref="CausalLM.ForwardHidden"/> and a frozen dense output head without active
    /// adapters, the LoRA/QLoRA case): <see cref="FusedLinearTokenSum"/>. Otherwise the plain
    /// <c>TokenSum(model.Forward(…))</c>, as under no_grad, and always with an active prompt-learning adapter
    /// (<see cref="CausalLM.ActivePrompt"/>: prefix tuning, prompt tuning, P-tuning), which enters
    /// <see cref="CausalLM.Forward"/> before the architecture and which <see cref="CausalLM.ForwardHidden"/> bypasses.
    /// (Bottleneck adapters sit inside the decoder blocks, so the hidden states include them.)
    /// </summary>
    public static Tensor ModelTokenSum(CausalLM model, Tensor inputIds, Tensor labels, Tensor? attentionMask = null, Tensor? positionIds = null)
    {
        if (is_grad_enabled()
            && model.ActivePrompt is null
            && model.OutputHead is LinearLayer { HasActiveAdapters: false, Base: DenseLinear dense } head
            && !dense.WeightParameter.requires_grad && head.Bias is not { requires_grad: true }
            && model.ForwardHidden(inputIds, attentionMask, positionIds) is { } hidden)
        {
            using var scope = NewDisposeScope();
            return FusedLinearTokenSum(hidden, dense.WeightParameter, head.Bias, labels, ChunkTokens(hidden.device, dense.OutFeatures)).MoveToOuterDisposeScope();
        }

        return TokenSum(model.Forward(inputIds, attentionMask, positionIds), labels);
    }

    /// <summary>Tokens per chunk of <see cref="FusedLinearTokenSum"/> for a vocabulary of <paramref name="vocab"/>: about
    /// 2²⁴ logits per chunk on CUDA, 2²² on the CPU.</summary>
    internal static int ChunkTokens(Device device, long vocab) =>
        (int)Math.Max(1, (device.type == DeviceType.CUDA ? 1 << 24 : 1 << 22) / vocab);

    /// <summary>
    /// The summed shifted cross-entropy of <c>logits = hidden · Wᵀ (+ b)</c> (<paramref name="weight"/> frozen), chunk by
    /// chunk of <paramref name="chunkTokens"/> tokens, with the gradient taken in the same pass: the approach of
    /// Liger-Kernel's fused linear cross-entropy (src/liger_kernel/ops/fused_linear_cross_entropy.py,
    /// <c>fused_linear_cross_entropy_forward</c>). Per chunk, in the compute dtype as transformers does
    /// (<c>lm_head</c> then <c>logits.float()</c> in <c>ForCausalLMLoss</c>): logits, fp32 cross-entropy, and
    /// <c>∂/∂hidden = (softmax − onehot(label)) · W</c> (zero for ignored labels), written into one buffer of the
    /// hidden's size; the backward pass only scales that buffer by the incoming gradient. So the fp32 logits exist for
    /// one chunk at a time and nothing of them is kept for the backward pass (before: the bf16 logits, their fp32 copy,
    /// the log-softmax and their gradients, for the whole batch), and no matmul is recomputed.
    /// </summary>
    /// <param name="hidden"><c>(B, T, C)</c> final hidden states.</param>
    /// <param name="weight"><c>(V, C)</c> frozen head weight.</param>
    /// <param name="bias"><c>(V)</c> frozen head bias, or null.</param>
    /// <param name="labels"><c>(B, T)</c> int64, -100 = ignored (not yet shifted).</param>
    /// <param name="chunkTokens">Tokens per chunk.</param>
    public static Tensor FusedLinearTokenSum(Tensor hidden, Tensor weight, Tensor? bias, Tensor labels, int chunkTokens)
    {
        using var scope = NewDisposeScope();
        var h = hidden[.., ..^1, ..].reshape(-1, hidden.shape[^1]);         // (N, C), N = B·(T−1)
        var y = labels[.., 1..].reshape(-1).to(hidden.device);              // (N)
        var state = new FusedHead(weight, bias, y.DetachFromDisposeScope(), chunkTokens);
        return FusedLinearCrossEntropy.apply(h, state).MoveToOuterDisposeScope();
    }

    private sealed class FusedHead(Tensor weight, Tensor? bias, Tensor labels, int chunkTokens)
    {
        public Tensor Weight { get; } = weight;

        public Tensor? Bias { get; } = bias;

        public Tensor Labels { get; } = labels;

        public int ChunkTokens { get; } = chunkTokens;
    }

    private sealed record SavedGradient(Tensor Value);

    private sealed class FusedLinearCrossEntropy : SingleTensorFunction<FusedLinearCrossEntropy>
    {
        private const string GradKey = "grad_hidden";

        public override string Name => "FusedLinearCrossEntropy";

        public override Tensor forward(AutogradContext ctx, params object[] vars)
        {
            var h = (Tensor)vars[0];
            var state = (FusedHead)vars[1];
            using var scope = NewDisposeScope();
            var n = h.shape[0];
            var gradHidden = empty_like(h);
            var total = zeros([], ScalarType.Float32, h.device);
            for (long start = 0; start < n; start += state.ChunkTokens)
            {
                using var chunkScope = NewDisposeScope();
                var length = Math.Min(state.ChunkTokens, n - start);
                var hc = h.narrow(0, start, length);
                var yc = state.Labels.narrow(0, start, length);
                // One log-softmax serves the loss and the gradient: −Σ log p(label) over the valid labels is
                // cross_entropy(…, ignore_index, reduction="sum"), and exp(log p) is the softmax, taken in place.
                var logp = nn.functional.linear(hc, state.Weight, state.Bias).to(ScalarType.Float32).log_softmax(-1); // (L, V)
                var valid = yc.ne(Data.TokenizedExample.IgnoreIndex).unsqueeze(1);                                // (L, 1)
                var labelIndex = yc.clamp_min(0).unsqueeze(1);
                total.sub_(logp.gather(1, labelIndex).mul_(valid).sum());
                var grad = logp.exp_();
                grad.scatter_add_(1, labelIndex, valid.to(ScalarType.Float32).neg());
                grad.mul_(valid);
                gradHidden.narrow(0, start, length).copy_(grad.to(h.dtype).matmul(state.Weight));  // (L, V)·(V, C)
            }

            state.Labels.Dispose();
            ctx.save_data(GradKey, new SavedGradient(gradHidden.DetachFromDisposeScope())); // (a tensor itself would be refused)
            return total.MoveToOuterDisposeScope();
        }

        public override List<Tensor> backward(AutogradContext ctx, Tensor gradOutput)
        {
            var saved = ((SavedGradient)ctx.get_data(GradKey)).Value;
            var inputGrad = (saved * gradOutput.to(saved.dtype)).DetachFromDisposeScope();
            saved.Dispose();
            gradOutput.Dispose();
            return PendingGradients.Return(inputGrad, null);
        }
    }
}
