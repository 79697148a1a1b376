namespace Lora.Data.Preference;

/// <summary>
/// TRL's <c>extract_prompt</c> (<c>trl/data_utils.py</c>): for a pair without a prompt, the longest common prefix of
/// chosen and rejected is the prompt, and the rest are the completions. Text is compared character by character and
/// a space just before the first difference goes with the completions; conversations are compared message by message.
/// <para>
/// Two edge cases differ from TRL's loop, which leaves the index at the last compared position when one completion is
/// a prefix of the other (and at −1 when the first characters differ after a trailing space): here the prompt is
/// then the whole shorter side (or empty), so no character is moved between prompt and completion by accident.
/// </para>
/// </summary>
public static class ImplicitPrompt
{
    public static (string Prompt, string Chosen, string Rejected) Split(string chosen, string rejected)
    {
        var n = Math.Min(chosen.Length, rejected.Length);
        var idx = 0;
        while (idx < n && chosen[idx] == rejected[idx])
            idx++;
        if (idx < n && idx > 0 && chosen[idx - 1] == ' ') // "remove space before the prompt" (TRL's comment)
            idx--;
        return (chosen[..idx], chosen[idx..], rejected[idx..]);
    }

    public static (IReadOnlyList<ChatMessage> Prompt, IReadOnlyList<ChatMessage> Chosen, IReadOnlyList<ChatMessage> Rejected) Split(IReadOnlyList<ChatMessage> chosen, IReadOnlyList<ChatMessage> rejected)
    {
        var n = Math.Min(chosen.Count, rejected.Count);
        var idx = 0;
        while (idx < n && chosen[idx] == rejected[idx])
            idx++;
        return (chosen.Take(idx).ToList(), chosen.Skip(idx).ToList(), rejected.Skip(idx).ToList());
    }
}
