using Lora.Peft;
using TorchSharp;
using TorchSharp.Modules;
using TorchSharp.Utils;
using static TorchSharp.torch;

namespace Lora.Tuners.PromptTuning;

/// <summary>
/// PEFT's <c>PromptEmbedding</c> (<c>tuners/prompt_tuning/model.py</c>): the virtual tokens are the rows of
/// <c>embedding</c> <c>(n, hidden)</c> themselves, prepended to the input embeddings (<see cref="VirtualTokenEncoder"/>).
/// </summary>
public sealed class PromptEmbedding : VirtualTokenEncoder
{
    [ComponentName(Name = "embedding")]
    public Embedding Embedding;

    public PromptEmbedding(int virtualTokens, int tokenDim, torch.Device device)
        : base(nameof(PromptEmbedding), virtualTokens)
    {
        Embedding = nn.Embedding(virtualTokens, tokenDim, device: device);
        RegisterComponents();
    }

    public override string MethodName => "prompt tuning";

    public override Parameter Table => Embedding.weight!;

    public override bool SavedFormIsComplete => true;

    public override Tensor PromptEmbeddings() => Table.alias();

    public override string Describe() => $"{MethodName}: {VirtualTokens} virtual token embeddings ({Table.shape[1]} wide) before the input";
}
