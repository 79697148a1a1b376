namespace Lora.Tuners.PTuning;

/// <summary>P-tuning's prompt encoder (PEFT's <c>PromptEncoderReparameterizationType</c>).</summary>
public enum PTuningEncoderType
{
    /// <summary><c>MLP</c>: <c>Linear(token_dim, h) → ReLU → Linear(h, h) → ReLU → Linear(h, token_dim)</c> (PEFT's
    /// default and recommendation).</summary>
    Mlp,

    /// <summary><c>LSTM</c>: a bidirectional LSTM of <c>encoder_num_layers</c> layers, hidden <c>h</c>, then
    /// <c>Linear(2h, 2h) → ReLU → Linear(2h, token_dim)</c> (Liu et al.'s original P-tuning).</summary>
    Lstm,
}
