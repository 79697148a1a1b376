namespace Lora.Data;

/// <summary>
/// A chat record <c>{"messages": [{"role", "content"}, ...]}</c> (TRL's conversational format). The assistant turns
/// are the training targets.
/// </summary>
public sealed record ChatRecord(IReadOnlyList<ChatMessage> Messages) : DataRecord;
