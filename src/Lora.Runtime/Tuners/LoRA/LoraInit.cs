namespace Lora.Tuners.LoRA;

/// <summary>How a new adapter's factors are initialised (PEFT's <c>init_lora_weights</c>).</summary>
public enum LoraInit
{
    /// <summary><c>true</c>: A ~ Kaiming-uniform(a=√5) = U(±1/√in), B = 0, so the adapter starts as a no-op.</summary>
    Default,

    /// <summary><c>"gaussian"</c>: A ~ N(0, (1/r)²), B = 0.</summary>
    Gaussian,

    /// <summary><c>false</c>: A and B both Kaiming-uniform (a visible random update; for tests and fixtures).</summary>
    Random,
}

/// <summary>Conversions between <see cref="LoraInit"/> and the JSON text of <c>init_lora_weights</c>.</summary>
public static class LoraInits
{
    public static LoraInit Parse(string jsonText) => jsonText switch
    {
        "true" => LoraInit.Default,
        "false" => LoraInit.Random,
        "\"gaussian\"" => LoraInit.Gaussian,
        _ => throw new LoraException($"init_lora_weights = {jsonText} is not supported (use true, false or \"gaussian\")."),
    };

    public static string ToJsonText(LoraInit init) => init switch
    {
        LoraInit.Random => "false",
        LoraInit.Gaussian => "\"gaussian\"",
        _ => "true",
    };
}
