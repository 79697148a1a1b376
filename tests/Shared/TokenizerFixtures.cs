using System.Collections.Concurrent;
using System.IO.Compression;
using System.Text.Json;

namespace Lora.Tests;

/// <summary>
/// The tokenizer fixtures under <c>fixtures/tokenizers/NAME/</c> (copied next to the test assembly). tokenizer.json
/// is stored gzipped to keep the repository small; <see cref="Directory"/> unpacks it once per test run into a
/// temporary model directory, which is what the code under test reads.
/// </summary>
internal static class TokenizerFixtures
{
    public static readonly string[] Names = ["llama2", "llama3", "qwen3"];

    private static readonly ConcurrentDictionary<string, Lazy<string>> Unpacked = new();
    private static readonly string Root = Path.Combine(Path.GetTempPath(), $"lora-tokenizer-fixtures-{Environment.ProcessId}");

    static TokenizerFixtures() => AppDomain.CurrentDomain.ProcessExit += (_, _) =>
    {
        try
        {
            System.IO.Directory.Delete(Root, recursive: true);
        }
        catch (IOException)
        {
        }
    };

    public static string Source(string name) => Path.Combine(AppContext.BaseDirectory, "fixtures", "tokenizers", name);

    /// <summary>A model directory holding tokenizer.json and tokenizer_config.json for <paramref name="name"/>.</summary>
    public static string Directory(string name) => Unpacked.GetOrAdd(name, n => new Lazy<string>(() => Unpack(n))).Value;

    /// <summary>A fresh, empty temporary directory for one test.</summary>
    public static string EmptyDirectory()
    {
        var path = Path.Combine(Root, "scratch", Guid.NewGuid().ToString("N"));
        System.IO.Directory.CreateDirectory(path);
        return path;
    }

    /// <summary>The HF reference rows for <paramref name="name"/> from fixtures/tokenizers/expected.json.</summary>
    public static IReadOnlyList<ExpectedEncoding> Expected(string name) => ExpectedByName.Value[name];

    private static readonly Lazy<Dictionary<string, List<ExpectedEncoding>>> ExpectedByName = new(() =>
    {
        var path = Path.Combine(AppContext.BaseDirectory, "fixtures", "tokenizers", "expected.json");
        return JsonSerializer.Deserialize<Dictionary<string, List<ExpectedEncoding>>>(File.ReadAllText(path))!;
    });

    private static string Unpack(string name)
    {
        var source = Source(name);
        var target = Path.Combine(Root, name);
        System.IO.Directory.CreateDirectory(target);
        using (var gz = new GZipStream(File.OpenRead(Path.Combine(source, "tokenizer.json.gz")), CompressionMode.Decompress))
        using (var output = File.Create(Path.Combine(target, "tokenizer.json")))
        {
            gz.CopyTo(output);
        }

        File.Copy(Path.Combine(source, "tokenizer_config.json"), Path.Combine(target, "tokenizer_config.json"), overwrite: true);
        return target;
    }
}

/// <summary>One row of expected.json, made by HF <c>tokenizers</c> (see tests/fixtures/tokenizers/README.md).</summary>
internal sealed record ExpectedEncoding(
    [property: System.Text.Json.Serialization.JsonPropertyName("text")] string Text,
    [property: System.Text.Json.Serialization.JsonPropertyName("ids")] int[] Ids,
    [property: System.Text.Json.Serialization.JsonPropertyName("ids_with_special")] int[] IdsWithSpecial,
    [property: System.Text.Json.Serialization.JsonPropertyName("decoded")] string Decoded);
