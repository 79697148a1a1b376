namespace Lora.Generators.Helpers;

/// <summary>Metadata names of the runtime types the generator and analyzers look up (never referenced directly:
/// the generator has no dependency on Lora.Runtime or TorchSharp). The plan attributes are listed by their methods
/// (<see cref="Analysis.Methods.PlanKinds"/>).</summary>
internal static class WellKnownMetadataNames
{
    public const string LoraAttribute = "Lora.LoraAttribute";
    public const string IA3Attribute = "Lora.IA3Attribute";
    public const string PrefixTuningAttribute = "Lora.PrefixTuningAttribute";
    public const string PromptTuningAttribute = "Lora.PromptTuningAttribute";
    public const string PTuningAttribute = "Lora.PTuningAttribute";
    public const string BottleneckAdapterAttribute = "Lora.BottleneckAdapterAttribute";
    public const string AdaptsAttribute = "Lora.AdaptsAttribute";
    public const string QuantizeAttribute = "Lora.QuantizeAttribute";
    public const string QuantizationConfig = "Lora.Quantization.QuantizationConfig";
    public const string PeftModel = "Lora.IPeftModel";
    public const string AdapterHost = "Lora.Peft.IAdapterHost`1";
    public const string CausalLM = "Lora.Models.CausalLM";
    public const string ModelConfig = "Lora.Models.ModelConfig";
    public const string Module = "TorchSharp.torch+nn+Module";
    public const string ModuleList = "TorchSharp.Modules.ModuleList`1";
    public const string ComponentNameAttribute = "TorchSharp.Utils.ComponentNameAttribute";
    public const string ScalarType = "TorchSharp.torch+ScalarType";
    public const string Device = "TorchSharp.torch+Device";
}
