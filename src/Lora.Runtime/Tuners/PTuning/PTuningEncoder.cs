using Lora.Peft;
using TorchSharp;
using TorchSharp.Modules;
using TorchSharp.Utils;
using static TorchSharp.torch;

namespace Lora.Tuners.PTuning;

/// <summary>
/// PEFT's P-tuning <c>PromptEncoder</c> (<c>tuners/p_tuning/model.py</c>): a table <c>embedding</c> <c>(n, token_dim)</c>
/// and, while training, <c>mlp_head</c> (and <c>lstm_head</c> for the LSTM type) mapping it to the virtual token
/// embeddings, which are prepended to the input (<see cref="VirtualTokenEncoder"/>). As PEFT's <c>get_prompt</c>, the
/// encoder runs once per pass on the table (batch 1) and its output is repeated over the batch. Loaded adapters have
/// the table only, filled with the saved output.
/// </summary>
public sealed class PTuningEncoder : VirtualTokenEncoder
{
    [ComponentName(Name = "embedding")]
    public Embedding Embedding;

    [ComponentName(Name = "lstm_head")]
    public LSTM? LstmHead;

    [ComponentName(Name = "mlp_head")]
    public Sequential? MlpHead;

    public PTuningEncoder(int virtualTokens, int tokenDim, PTuningEncoderType? type, int hidden, int lstmLayers, double lstmDropout, torch.Device device)
        : base(nameof(PTuningEncoder), virtualTokens)
    {
        Embedding = nn.Embedding(virtualTokens, tokenDim, device: device);
        switch (type)
        {
            case PTuningEncoderType.Lstm:
                LstmHead = nn.LSTM(tokenDim, hidden, lstmLayers, batchFirst: true, dropout: lstmDropout, bidirectional: true, device: device);
                MlpHead = nn.Sequential(
                    ("0", nn.Linear(2 * hidden, 2 * hidden, device: device)),
                    ("1", nn.ReLU()),
                    ("2", nn.Linear(2 * hidden, tokenDim, device: device)));
                break;
            case PTuningEncoderType.Mlp:
                MlpHead = nn.Sequential(
                    ("0", nn.Linear(tokenDim, hidden, device: device)),
                    ("1", nn.ReLU()),
                    ("2", nn.Linear(hidden, hidden, device: device)),
                    ("3", nn.ReLU()),
                    ("4", nn.Linear(hidden, tokenDim, device: device)));
                break;
        }

        RegisterComponents();
    }

    public override string MethodName => "P-tuning";

    public override Parameter Table => Embedding.weight!;

    public override bool SavedFormIsComplete => MlpHead is null;

    /// <summary><c>(n, token_dim)</c>: the table through the encoder (PEFT: <c>mlp_head(lstm_head(embeds)[0])</c>).</summary>
    public override Tensor PromptEmbeddings()
    {
        if (MlpHead is null)
            return Table.alias();
        using var scope = NewDisposeScope();
        var x = Table.unsqueeze(0);                                    // (1, n, token_dim)
        if (LstmHead is not null)
            x = LstmHead.call(x).Item1;                                // (1, n, 2h)
        return MlpHead.call(x).squeeze(0).MoveToOuterDisposeScope();   // (n, token_dim)
    }

    public override string Describe() =>
        $"{MethodName}: {VirtualTokens} virtual token embeddings ({Table.shape[1]} wide) before the input{(MlpHead is null ? string.Empty : $", produced by a{(LstmHead is null ? "n MLP" : " bidirectional LSTM + MLP")} prompt encoder while training")}";
}
