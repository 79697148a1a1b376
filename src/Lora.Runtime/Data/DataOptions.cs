namespace Lora.Data;

/// <summary>How a dataset is read and turned into token ids.</summary>
public sealed record DataOptions
{
    /// <summary>Examples longer than this are cut from the end; plain text is cut into blocks of this size.</summary>
    public int MaxLength { get; init; } = 1024;

    /// <summary>
    /// Keep labels on the prompt too (train on all tokens). Off by default: completion-only loss, as Stanford Alpaca,
    /// QLoRA (<c>train_on_source=False</c>) and TRL's <c>completion_only_loss</c> do.
    /// </summary>
    public bool TrainOnPrompt { get; init; }

    /// <summary>The template; null picks <see cref="PromptTemplate.Alpaca"/> for Alpaca records and
    /// <see cref="PromptTemplate.ChatMl"/> for chats.</summary>
    public PromptTemplate? Template { get; init; }

    /// <summary>The record format, or <see cref="DataFormat.Auto"/> to detect it.</summary>
    public DataFormat Format { get; init; } = DataFormat.Auto;
}
