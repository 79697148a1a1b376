namespace Lora.Data;

/// <summary>
/// A piece of rendered prompt text. Target pieces (the response, an assistant turn) keep their labels; the others
/// are labelled -100 unless the whole example is trained on.
/// </summary>
public readonly record struct TemplateSegment(string Text, bool IsTarget);
