using Lora.Backend;
using TorchSharp;
using static TorchSharp.torch;
using static TorchSharp.torch.autograd;

namespace Lora.Kernels;

/// <summary>
/// The SwiGLU gate of Llama's MLP, <c>silu(gate) · up</c> (transformers' <c>LlamaMLP.forward</c>:
/// <c>down_proj(act_fn(gate_proj(x)) * up_proj(x))</c>), keeping only its two inputs for the backward pass, in their
/// dtype. Differentiated op by op, autograd would also keep <c>silu(gate)</c> — one more <c>(B, T, intermediate)</c>
/// tensor per layer, the widest activation of the block; here it is recomputed in the backward pass, which costs one
/// elementwise pass. Backward: <c>∂up = g · silu(gate)</c>, <c>∂gate = silu_backward(g · up, gate)</c>.
/// </summary>
internal sealed class SwiGluFunction : SingleTensorFunction<SwiGluFunction>
{
    public override string Name => "SwiGlu";

    /// <summary><c>silu(gate) · up</c>, both <c>(…, I)</c> of one dtype.</summary>
    public static Tensor Apply(Tensor gate, Tensor up) => apply(gate, up);

    public override Tensor forward(AutogradContext ctx, params object[] vars)
    {
        var gate = (Tensor)vars[0];
        var up = (Tensor)vars[1];
        ctx.save_for_backward([gate, up]);
        ctx.save_data("gate_grad", gate.requires_grad);
        ctx.save_data("up_grad", up.requires_grad);
        return nn.functional.silu(gate) * up;
    }

    public override List<Tensor> backward(AutogradContext ctx, Tensor grad)
    {
        Tensor? gradGate = null, gradUp = null;
        using (var scope = NewDisposeScope())
        {
            var saved = ctx.get_saved_variables();
            var (gate, up) = (saved[0], saved[1]);
            if ((bool)ctx.get_data("up_grad"))
                gradUp = (grad * nn.functional.silu(gate)).DetachFromDisposeScope();
            if ((bool)ctx.get_data("gate_grad"))
                gradGate = AtenScript.SiluBackward(grad * up, gate).DetachFromDisposeScope();
        }

        grad.Dispose();
        return PendingGradients.Return(gradGate, gradUp);
    }
}
