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
/// Same gradients as without checkpointing: the recomputation restores the CPU random-number state captured before
/// the first run, so dropout draws the same masks (PyTorch's <c>preserve_rng_state</c>). TorchSharp does not expose
/// the CUDA generator state, so on CUDA a block with active dropout draws a fresh mask when recomputed.
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
        var state = new State(block, context.Select(c => c?.alias().DetachFromDisposeScope()).ToArray(), get_rng_state().DetachFromDisposeScope());
        return CheckpointFunction.apply(x, state);
    }

    /// <summary>Blocks recomputed in backward passes so far (for tests and diagnostics).</summary>
    internal static long Recomputations => Interlocked.Read(ref _recomputations);

    private static long _recomputations;

    /// <summary>Releases the handles of gradients given to the autograd engine (by checkpointed blocks and the
    /// quantized matmuls); call after each backward pass.</summary>
    public static void ReleasePending() => PendingGradients.Release();

    private sealed class State(Func<Tensor, Tensor?[], Tensor> block, Tensor?[] context, Tensor rng) : IDisposable
    {
        public Func<Tensor, Tensor?[], Tensor> Block { get; } = block;

        public Tensor?[] Context { get; } = context;

        public Tensor Rng { get; } = rng;

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
            return state.Block(x, state.Context); // grad is off here (apply runs forward without autograd)
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
                    var outer = get_rng_state();
                    set_rng_state(state.Rng);
                    Tensor output;
                    try
                    {
                        output = state.Block(input, state.Context);
                    }
                    finally
                    {
                        set_rng_state(outer);
                    }

                    autograd.backward([output], [gradOutput]);
                }

                inputGrad = (input.grad ?? zeros_like(input)).DetachFromDisposeScope();
            }

            state.Dispose();
            gradOutput.Dispose();
            Interlocked.Increment(ref _recomputations);
            PendingGradients.Hold(inputGrad);
            return [inputGrad, null!];
        }
    }
}
