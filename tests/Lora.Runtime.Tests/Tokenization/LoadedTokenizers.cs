using System.Collections.Concurrent;
using Lora.Tests;
using Lora.Tokenization;

namespace Lora.Runtime.Tests.Tokenization;

/// <summary>Each fixture tokenizer loaded once per test run (loading Llama 3's 280k merges takes a moment).</summary>
internal static class LoadedTokenizers
{
    private static readonly ConcurrentDictionary<string, Lazy<HfTokenizer>> Cache = new();

    public static HfTokenizer Get(string name) =>
        Cache.GetOrAdd(name, n => new Lazy<HfTokenizer>(() => HfTokenizer.Load(TokenizerFixtures.Directory(n)))).Value;
}
