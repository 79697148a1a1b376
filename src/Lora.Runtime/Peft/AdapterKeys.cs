namespace Lora.Peft;

/// <summary>
/// Names of adapter parameters in our module tree and in PEFT files (C5). An adapter of the layer at path P lives at
/// <c>P.adapters.{name}</c> in the model; its parameter <c>s</c> (<c>lora_A.weight</c>, <c>lora_B.bias</c>,
/// <c>lora_magnitude_vector</c>, <c>lora_embedding_A</c>, <c>ia3_l</c>, ...: the adapter module's own parameter names are
/// PEFT's key suffixes) is saved as <c>base_model.model.P.s</c>, with no adapter name in the key. Which parameters
/// belong to adapters is found from the module tree (<see cref="PeftModelExtensions.AdapterParameters"/>), never
/// from these strings.
/// </summary>
public static class AdapterKeys
{
    public const string PeftPrefix = "base_model.model.";

    /// <summary><c>base_model.model.{hostPath}.{parameterName}</c>.</summary>
    public static string PeftKey(string hostPath, string parameterName) => PeftPrefix + hostPath + "." + parameterName;

    /// <summary>The parameter's name in the model: <c>{hostPath}.adapters.{adapter}.{parameterName}</c>.</summary>
    public static string ModelName(string hostPath, string adapter, string parameterName) =>
        $"{hostPath}.{AdapterHost<LinearAdapter>.AdaptersName}.{adapter}.{parameterName}";

    /// <summary>A PEFT file key with the <c>base_model.model.</c> prefix, whether or not it had one (C6).</summary>
    public static string WithPeftPrefix(string key) =>
        key.StartsWith(PeftPrefix, StringComparison.Ordinal) ? key : PeftPrefix + key;
}

/// <summary>One parameter of one adapter: the layer it sits on, the adapter, its name inside the adapter (the PEFT key
/// suffix) and the live tensor.</summary>
public sealed record AdapterParameter(string HostPath, string Adapter, string Name, TorchSharp.Modules.Parameter Parameter)
{
    /// <summary>The parameter's name in <c>named_parameters()</c>.</summary>
    public string ModelName => AdapterKeys.ModelName(HostPath, Adapter, Name);

    /// <summary>Its key in <c>adapter_model.safetensors</c>.</summary>
    public string PeftKey => AdapterKeys.PeftKey(HostPath, Name);
}
