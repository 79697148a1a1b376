using Lora.Backend;
using TorchSharp;
using static TorchSharp.torch;
using static TorchSharp.torch.autograd;

namespace Lora.Training;

/// <summary>
/// Activation (gradient) checkpointing of one block, as PyTorch's reentrant <c>torch.utils.checkpoint</c>
/// (<c>use_reentrant=True</c>, which transformers used for years): the forward runs without building a graph, so the
/// block's activations are not kept; only its input is saved. In the backward pass the block is run again with grad
/// enabled on the saved input, and <c>autograd.backward(output, grad_output)</c> through that fresh graph
/// accumulates the parameters' gradients and yields the input's gradient. Memory per block drops from all its
/// activations to its input; the cost is one extra forward per block.
/// <para>
/// The gradients are those of the forward that was computed, dropout included: the recomputation redraws the first
/// run's random numbers (PyTorch's <c>preserve_rng_state</c>, <see cref="RecomputationRng"/>). On the CPU the
/// generator's state is captured before the first run and set again for the recomputation, so the masks are also
/// those of a run without checkpointing. On CUDA, whose generator state TorchSharp does not expose, the block is run
/// after <c>torch.cuda.manual_seed_all(seed)</c> with a seed drawn from the CPU generator on the host, and the
/// recomputation reseeds with the same seed, so both runs draw the same masks (a function of that seed, not the
/// continuation of the CUDA stream that a run without checkpointing would draw from). The outer CPU stream is
/// restored after the recomputation (PyTorch: <c>torch.random.fork_rng</c>).
/// </para>
/// <para>
/// PyTorch's <c>CheckpointFunction</c> also recomputes under the forward's autocast state
/// (<c>_get_autocast_kwargs</c>); this toolkit runs no autocast (bf16/fp32 weights are cast explicitly), so there is
/// none to carry.
/// </para>
/// <para>
/// As with transformers' <c>enable_input_require_grads</c>, an input that does not require grad (the output of a
/// frozen embedding under LoRA) is marked as requiring it, otherwise nothing would flow back into the block.
/// </para>
/// </summary>
public static class GradientCheckpoint
{
    /// <summary>
    /// <c>block(x, context)</c>, checkpointed when grad is enabled (otherwise a plain call). <paramref name="context"/>
    /// holds the other tensors the block reads (rotary tables, masks; none may require grad); they are kept alive
    /// until the backward pass.
    /// </summary>
    public static Tensor Run(Func<Tensor, Tensor?[], Tensor> block, Tensor x, params Tensor?[] context)
    {
        if (!is_grad_enabled())
            return block(x, context);
        if (!x.requires_grad)
            x.requires_grad_(true); // a tensor that does not require grad is a leaf, so this is allowed
        // PyTorch CheckpointFunction.forward: the inputs are saved and the RNG state captured before the block runs.
        var state = new State(block, context.Select(c => c?.alias().DetachFromDisposeScope()).ToArray(), RecomputationRng.For(x.device).Capture());
        return CheckpointFunction.apply(x, state);
    }

    /// <summary>Blocks recomputed in backward passes so far (for tests and diagnostics).</summary>
    internal static long Recomputations => Interlocked.Read(ref _recomputations);

    private static long _recomputations;

    /// <summary>Releases the handles of gradients given to the autograd engine (by checkpointed blocks, the quantized
    /// matmuls and the fused cross-entropy) that are still held: during the backward pass each engine thread holds only
    /// its last callback's (<see cref="PendingGradients"/>); call after each backward pass for those.</summary>
    public static void ReleasePending() => PendingGradients.Release();

    private sealed class State(Func<Tensor, Tensor?[], Tensor> block, Tensor?[] context, RecomputationRng.Snapshot rng) : IDisposable
    {
        public Func<Tensor, Tensor?[], Tensor> Block { get; } = block;

        public Tensor?[] Context { get; } = context;

        public RecomputationRng.Snapshot Rng { get; } = rng;

        public void Dispose()
        {
            foreach (var t in Context)
                t?.Dispose();
            Rng.Dispose();
        }
    }

    private sealed class CheckpointFunction : SingleTensorFunction<CheckpointFunction>
    {
        private const string StateKey = "state";

        public override string Name => "GradientCheckpoint";

        public override Tensor forward(AutogradContext ctx, params object[] vars)
        {
            var x = (Tensor)vars[0];
            var state = (State)vars[1];
            ctx.save_for_backward([x]);
            ctx.save_data(StateKey, state);
            return state.Rng.RunForward(() => state.Block(x, state.Context)); // grad is off here (apply runs forward without autograd)
        }

        public override List<Tensor> backward(AutogradContext ctx, Tensor gradOutput)
        {
            var state = (State)ctx.get_data(StateKey);
            Tensor inputGrad;
            using (var scope = NewDisposeScope())
            {
                var saved = ctx.get_saved_variables()[0];
                var input = saved.detach().requires_grad_(true);
                using (enable_grad())
                {
                    // PyTorch CheckpointFunction.backward: detached inputs, recompute under the forward's RNG state
                    // (fork_rng), then torch.autograd.backward(outputs, grad_outputs) through the fresh graph.
                    var output = state.Rng.Recompute(() => state.Block(input, state.Context));
                    autograd.backward([output], [gradOutput]);
                }

                inputGrad = (input.grad ?? zeros_like(input)).DetachFromDisposeScope();
            }

            state.Dispose();
            gradOutput.Dispose();
            Interlocked.Increment(ref _recomputations);
            return PendingGradients.Return(inputGrad, null); // released at this thread's next Return, once the engine holds it
        }
    }
}
