using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.Text;

namespace Lora.Generators.Tests.Helpers;

/// <summary>An AdditionalFiles entry held in memory (checkpoint metadata fixtures).</summary>
internal sealed class InMemoryAdditionalText(string path, string text) : AdditionalText
{
    public override string Path { get; } = path;

    public override SourceText GetText(CancellationToken cancellationToken = default) => SourceText.From(text);
}
