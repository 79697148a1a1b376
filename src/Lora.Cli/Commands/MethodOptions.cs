using System.CommandLine;
using Lora.Peft;
using Lora.Tuners.Bottleneck;
using Lora.Tuners.PrefixTuning;
using Lora.Tuners.PromptTuning;
using Lora.Tuners.PTuning;

namespace Lora.Cli.Commands;

/// <summary>
/// <c>--method</c> and the options of the methods that are not LoRA/DoRA/IA3 (shared by train and inspect):
/// <code>
///   prefix       prefix tuning through PEFT's reparameterisation MLP   --virtual-tokens N [--encoder-hidden-size H]
///   ptuning-v2   prefix tuning without it (P-Tuning v2)                --virtual-tokens N
///   prompt       prompt tuning                                          --virtual-tokens N [--prompt-init-text TEXT]
///   ptuning      P-tuning (prompt encoder)                              --virtual-tokens N [--encoder-hidden-size H]
///                                                                       [--encoder-type mlp|lstm] [--encoder-layers L] [--encoder-dropout P]
///   adapter      bottleneck adapters (AdapterHub's format)              [--adapter-size D | --reduction-factor F]
///                                                                       [--placement pfeiffer|houlsby] [--non-linearity NAME]
/// </code>
/// See docs/methods.md.
/// </summary>
internal sealed class MethodOptions
{
    /// <summary>Every <c>--method</c> value.</summary>
    public static readonly string[] Names = ["lora", "dora", "ia3", "prefix", "ptuning-v2", "prompt", "ptuning", "adapter"];

    private static readonly string[] PromptLearning = ["prefix", "ptuning-v2", "prompt", "ptuning"];

    private readonly Option<int?> _virtualTokens = new("--virtual-tokens") { Description = "prefix, ptuning-v2, prompt, ptuning: virtual tokens (PEFT num_virtual_tokens, default 20)." };
    private readonly Option<int?> _encoderHidden = new("--encoder-hidden-size") { Description = "prefix: the reparameterisation MLP's width; ptuning: the prompt encoder's (default: the token width)." };
    private readonly Option<string?> _initText = new("--prompt-init-text") { Description = "prompt: start the virtual tokens from this text's token embeddings (the model's tokenizer)." };
    private readonly Option<string?> _encoderType = new("--encoder-type") { Description = "ptuning: the prompt encoder, mlp (default) or lstm." };
    private readonly Option<int?> _encoderLayers = new("--encoder-layers") { Description = "ptuning --encoder-type lstm: LSTM layers (default 2)." };
    private readonly Option<double?> _encoderDropout = new("--encoder-dropout") { Description = "ptuning --encoder-type lstm: dropout between LSTM layers (default 0)." };
    private readonly Option<int?> _adapterSize = new("--adapter-size") { Description = "adapter: the bottleneck width (default: hidden size / 16)." };
    private readonly Option<double?> _reductionFactor = new("--reduction-factor") { Description = "adapter: width = hidden size / F (AdapterHub's reduction_factor, default 16)." };
    private readonly Option<string?> _placement = new("--placement") { Description = "adapter: pfeiffer (after the MLP, default) or houlsby (after attention and MLP)." };
    private readonly Option<string?> _nonLinearity = new("--non-linearity") { Description = "adapter: relu, swish, gelu, gelu_new, tanh, sigmoid or leakyrelu (default: relu for pfeiffer, swish for houlsby)." };

    public IEnumerable<Option> All => [_virtualTokens, _encoderHidden, _initText, _encoderType, _encoderLayers, _encoderDropout, _adapterSize, _reductionFactor, _placement, _nonLinearity];

    /// <summary>Is <paramref name="method"/> a prompt-learning method (no layer targets)?</summary>
    public static bool IsPromptLearning(string method) => PromptLearning.Contains(method);

    /// <summary>Is <paramref name="method"/> one this class builds (not LoRA/DoRA/IA3)?</summary>
    public static bool Builds(string method) => IsPromptLearning(method) || method == "adapter";

    /// <summary>True when any of these options was given.</summary>
    public bool Given(ParseResult parse) => All.Any(o => parse.GetResult(o) is { Implicit: false });

    /// <summary>Refuses options of another method than <paramref name="method"/>, and settings these methods cannot
    /// run with (nothing is loaded yet).</summary>
    public void Check(ParseResult parse, string method, bool packing, bool gradientCheckpointing)
    {
        void Only(Option option, string methods, params string[] allowed)
        {
            if (parse.GetResult(option) is { Implicit: false } && !allowed.Contains(method))
                throw new LoraException($"{option.Name} is an option of --method {methods}: drop it, or choose that method.");
        }

        Only(_virtualTokens, "prefix, ptuning-v2, prompt or ptuning", PromptLearning);
        Only(_encoderHidden, "prefix or ptuning", "prefix", "ptuning");
        Only(_initText, "prompt", "prompt");
        Only(_encoderType, "ptuning", "ptuning");
        Only(_encoderLayers, "ptuning (with --encoder-type lstm)", "ptuning");
        Only(_encoderDropout, "ptuning (with --encoder-type lstm)", "ptuning");
        Only(_adapterSize, "adapter", "adapter");
        Only(_reductionFactor, "adapter", "adapter");
        Only(_placement, "adapter", "adapter");
        Only(_nonLinearity, "adapter", "adapter");
        if (parse.GetValue(_adapterSize) is not null && parse.GetValue(_reductionFactor) is not null)
            throw new LoraException("--adapter-size and --reduction-factor conflict: give one (AdapterHub stores one reduction factor).");
        if (method == "ptuning" && !IsLstm(parse) && (parse.GetValue(_encoderLayers) is not null || parse.GetValue(_encoderDropout) is not null))
            throw new LoraException("--encoder-layers and --encoder-dropout apply to --encoder-type lstm (PEFT's MLP prompt encoder has fixed layers).");
        if (IsPromptLearning(method) && packing)
            throw new LoraException($"--packing puts several examples in one row, but --method {method} adds virtual tokens before each input: train it without --packing.");
        if (method is "prefix" or "ptuning-v2" && gradientCheckpointing)
            throw new LoraException($"--method {method} does not work with --gradient-checkpointing (the recomputed layers would not see the key/value prefixes; PEFT refuses it too).");
    }

    /// <summary>The config of <paramref name="method"/> from the options (null for lora, dora and ia3).</summary>
    public PeftConfig? Config(ParseResult parse, string method, string baseModel)
    {
        var tokens = parse.GetValue(_virtualTokens) ?? 20;
        if (IsPromptLearning(method) && tokens <= 0)
            throw new LoraException($"--virtual-tokens must be > 0 (got {tokens}).");
        if (parse.GetValue(_encoderHidden) is <= 0)
            throw new LoraException($"--encoder-hidden-size must be > 0 (got {parse.GetValue(_encoderHidden)}).");
        return method switch
        {
            "prefix" or "ptuning-v2" => new PrefixTuningConfig
            {
                NumVirtualTokens = tokens,
                PrefixProjection = method == "prefix",
                EncoderHiddenSize = parse.GetValue(_encoderHidden),
                BaseModelNameOrPath = baseModel,
            },
            "prompt" => new PromptTuningConfig
            {
                NumVirtualTokens = tokens,
                PromptTuningInit = parse.GetValue(_initText) is null ? PromptTuningInit.Random : PromptTuningInit.Text,
                PromptTuningInitText = parse.GetValue(_initText),
                TokenizerNameOrPath = parse.GetValue(_initText) is null ? null : baseModel,
                BaseModelNameOrPath = baseModel,
            },
            "ptuning" => new PTuningConfig
            {
                NumVirtualTokens = tokens,
                EncoderType = IsLstm(parse) ? PTuningEncoderType.Lstm : PTuningEncoderType.Mlp,
                EncoderHiddenSize = parse.GetValue(_encoderHidden),
                EncoderNumLayers = parse.GetValue(_encoderLayers) ?? 2,
                EncoderDropout = parse.GetValue(_encoderDropout) ?? 0,
                BaseModelNameOrPath = baseModel,
            },
            "adapter" => BottleneckConfig.For(Placement(parse), parse.GetValue(_adapterSize), parse.GetValue(_reductionFactor), parse.GetValue(_nonLinearity)) with
            {
                BaseModelNameOrPath = baseModel,
            },
            _ => null,
        };
    }

    private bool IsLstm(ParseResult parse) => parse.GetValue(_encoderType)?.ToLowerInvariant() switch
    {
        null or "mlp" => false,
        "lstm" => true,
        var other => throw new LoraException($"--encoder-type '{other}' is not one of mlp, lstm."),
    };

    private BottleneckPlacement Placement(ParseResult parse) => parse.GetValue(_placement)?.ToLowerInvariant() switch
    {
        null or "pfeiffer" => BottleneckPlacement.Pfeiffer,
        "houlsby" => BottleneckPlacement.Houlsby,
        var other => throw new LoraException($"--placement '{other}' is not one of pfeiffer, houlsby."),
    };
}
