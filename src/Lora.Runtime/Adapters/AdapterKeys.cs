namespace Lora.Adapters;

/// <summary>
/// Names of adapter parameters in our module tree and in PEFT files. In the model an adapter of the layer at path P
/// lives at <c>P.adapters.{name}.{suffix}</c>; PEFT saves it as <c>base_model.model.P.{suffix}</c> (suffix
/// <c>lora_A.weight</c>, <c>lora_B.weight</c>, <c>lora_B.bias</c>, <c>lora_magnitude_vector</c>, <c>lora_embedding_A</c>, ...), with no
/// adapter name in the key (C5).
/// </summary>
public static class AdapterKeys
{
    public const string PeftPrefix = "base_model.model.";

    private const string Segment = "." + AdaptableModule<LoraAdapter>.AdaptersName + ".";

    /// <summary>True for a parameter that belongs to an adapter (not to the base model).</summary>
    public static bool IsAdapterParameter(string parameterName) =>
        parameterName.Contains(Segment, StringComparison.Ordinal);

    /// <summary><c>P.adapters.{name}.{suffix}</c> → (adapter name, <c>base_model.model.P.{suffix}</c>).</summary>
    public static (string Adapter, string PeftKey) ToPeft(string parameterName)
    {
        var at = parameterName.IndexOf(Segment, StringComparison.Ordinal);
        if (at < 0)
            throw new ArgumentException($"'{parameterName}' is not an adapter parameter.", nameof(parameterName));
        var path = parameterName[..at];
        var rest = parameterName[(at + Segment.Length)..];
        var dot = rest.IndexOf('.', StringComparison.Ordinal);
        return (rest[..dot], PeftPrefix + path + "." + rest[(dot + 1)..]);
    }

    /// <summary>A PEFT file key with the <c>base_model.model.</c> prefix, whether or not it had one (C6).</summary>
    public static string WithPeftPrefix(string key) =>
        key.StartsWith(PeftPrefix, StringComparison.Ordinal) ? key : PeftPrefix + key;
}
