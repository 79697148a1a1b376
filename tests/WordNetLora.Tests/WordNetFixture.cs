using WordNetLora.Data;

namespace WordNetLora.Tests;

/// <summary>The committed WordNet excerpt (tests/fixtures/wordnet: real lines of wordnet-base 3.0's files).</summary>
internal static class WordNetFixture
{
    public static string Directory { get; } = Path.Combine(AppContext.BaseDirectory, "fixtures", "wordnet");

    public static WordNet Load() => WordNet.Load(Directory);
}
