namespace Lora.Backend;

/// <summary>A device request as users write it: <c>auto</c> (CUDA if available, else CPU), <c>cpu</c>, <c>cuda</c> or
/// <c>cuda:N</c>.</summary>
public sealed record DeviceSpec(DeviceSpec.Kind Type, int Index = -1)
{
    public enum Kind
    {
        Auto,
        Cpu,
        Cuda,
    }

    public static DeviceSpec Auto { get; } = new(Kind.Auto);

    public static DeviceSpec Cpu { get; } = new(Kind.Cpu);

    /// <summary>Parses <c>auto</c>, <c>cpu</c>, <c>cuda</c>, <c>cuda:N</c> (case-insensitive).</summary>
    /// <exception cref="LoraException">The text names no device we know; the message lists the accepted forms.</exception>
    public static DeviceSpec Parse(string text)
    {
        var t = text.Trim().ToLowerInvariant();
        if (t is "auto" or "")
            return Auto;
        if (t == "cpu")
            return Cpu;
        if (t == "cuda")
            return new DeviceSpec(Kind.Cuda);
        if (t.StartsWith("cuda:", StringComparison.Ordinal)
            && int.TryParse(t.AsSpan(5), System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var index))
            return new DeviceSpec(Kind.Cuda, index);
        throw new LoraException($"Unknown device '{text}': use auto, cpu, cuda or cuda:N.");
    }

    public override string ToString() => Type switch
    {
        Kind.Auto => "auto",
        Kind.Cpu => "cpu",
        _ => Index >= 0 ? $"cuda:{Index}" : "cuda",
    };
}
