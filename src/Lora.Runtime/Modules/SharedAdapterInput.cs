using TorchSharp;
using static TorchSharp.torch;

namespace Lora.Modules;

/// <summary>
/// A layer input read by several adapted linear layers — q, k and v of one attention block, gate and up of one MLP —
/// so that an adapter in another dtype than the base (fp32 LoRA factors on a bf16 model, PEFT's default
/// <c>autocast_adapter_dtype=True</c>) casts it once for all of them: PEFT's <c>_cast_input_dtype</c> casts it per
/// adapted layer, and autograd keeps each copy until the backward pass (a fp32 copy of x per adapted projection).
/// The block that owns x opens the scope (<c>using var shared = SharedAdapterInput.Begin(x)</c>); adapters ask
/// <see cref="Cast"/>. Casts are remembered only for that exact tensor object and only while the scope is open, in
/// which the block does not modify x. Scopes nest per thread (a checkpointed block recomputed in the backward pass
/// opens its own).
/// </summary>
public sealed class SharedAdapterInput : IDisposable
{
    [ThreadStatic]
    private static SharedAdapterInput? _current;

    private readonly Tensor _source;
    private readonly SharedAdapterInput? _outer;
    private readonly Dictionary<ScalarType, Tensor> _casts = [];
    private bool _disposed;

    private SharedAdapterInput(Tensor source, SharedAdapterInput? outer)
    {
        _source = source;
        _outer = outer;
    }

    /// <summary>Shared casts made on this thread so far (for tests).</summary>
    internal static long CastsMade => _castsMade;

    [ThreadStatic]
    private static long _castsMade;

    /// <summary>Opens a scope in which adapters share the casts of <paramref name="x"/>.</summary>
    public static SharedAdapterInput Begin(Tensor x) => _current = new SharedAdapterInput(x, _current);

    /// <summary><paramref name="x"/> in <paramref name="dtype"/>: itself when it already is; the scope's shared cast
    /// when <paramref name="x"/> is the tensor of the innermost open scope; otherwise a fresh cast. The result belongs
    /// to the caller's dispose scope (a shared cast is handed out as an alias).</summary>
    public static Tensor Cast(Tensor x, ScalarType dtype)
    {
        if (x.dtype == dtype)
            return x;
        if (_current is not { } scope || !ReferenceEquals(scope._source, x))
            return x.to(dtype);
        if (!scope._casts.TryGetValue(dtype, out var cast))
        {
            cast = x.to(dtype).DetachFromDisposeScope();
            scope._casts[dtype] = cast;
            _castsMade++;
        }

        return cast.alias();
    }

    public void Dispose()
    {
        if (_disposed)
            return;
        _disposed = true;
        foreach (var cast in _casts.Values)
            cast.Dispose(); // autograd holds its own reference where the backward pass needs the cast
        _casts.Clear();
        if (ReferenceEquals(_current, this))
            _current = _outer;
    }
}
