namespace Lora.Data;

/// <summary>One turn of a chat: <see cref="Role"/> is <c>system</c>, <c>user</c> or <c>assistant</c>.</summary>
public sealed record ChatMessage(string Role, string Content)
{
    public const string System = "system";
    public const string User = "user";
    public const string Assistant = "assistant";

    /// <summary>The roles a chat file may use.</summary>
    public static IReadOnlyList<string> Roles { get; } = [System, User, Assistant];
}
