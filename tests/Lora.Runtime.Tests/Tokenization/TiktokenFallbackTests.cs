using System.Text;
using System.Text.Json;
using Lora.Tests;
using Lora.Tokenization;

namespace Lora.Runtime.Tests.Tokenization;

/// <summary>
/// The tiktoken path (Llama 3's original <c>tokenizer.model</c>): a rank file written from the Llama 3 fixture's
/// byte-level vocabulary (rank = id, which is how that tokenizer.json was converted from tiktoken) must give HF's
/// ids for every fixture string.
/// </summary>
public sealed class TiktokenFallbackTests
{
    private static readonly Lazy<HfTokenizer> Tokenizer = new(() =>
    {
        var dir = TokenizerFixtures.EmptyDirectory();
        using var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(TokenizerFixtures.Directory("llama3"), "tokenizer.json")));
        var lines = new StringBuilder();
        foreach (var entry in doc.RootElement.GetProperty("model").GetProperty("vocab").EnumerateObject().OrderBy(e => e.Value.GetInt32()))
        {
            var bytes = new List<byte>();
            Assert.True(ByteLevelAlphabet.TryDecode(entry.Name, bytes));
            lines.Append(Convert.ToBase64String(bytes.ToArray())).Append(' ').Append(entry.Value.GetInt32()).Append('\n');
        }

        File.WriteAllText(Path.Combine(dir, "tokenizer.model"), lines.ToString());
        File.Copy(Path.Combine(TokenizerFixtures.Directory("llama3"), "tokenizer_config.json"), Path.Combine(dir, "tokenizer_config.json"));
        return HfTokenizer.Load(dir);
    });

    public static TheoryData<int> Rows() => [.. Enumerable.Range(0, TokenizerFixtures.Expected("llama3").Count)];

    [Theory]
    [MemberData(nameof(Rows))]
    public void Tiktoken_file_gives_hf_ids_and_text(int row)
    {
        var expected = TokenizerFixtures.Expected("llama3")[row];
        var ids = Tokenizer.Value.Encode(expected.Text, addSpecialTokens: false);
        Assert.Equal(expected.Ids, ids);
        Assert.Equal(expected.Decoded, Tokenizer.Value.Decode(ids));
    }

    /// <summary>The Llama 3 cases of <see cref="AstralPreTokenizerTests"/> (characters outside the BMP; derivation
    /// there): tiktoken splits on code points too, and its rank merges give the same ids.</summary>
    [Theory]
    [MemberData(nameof(AstralRows))]
    public void Tiktoken_splits_astral_characters_on_code_points(string text, int[] ids)
    {
        Assert.Equal(ids, Tokenizer.Value.Encode(text, addSpecialTokens: false));
        Assert.Equal(text, Tokenizer.Value.Decode(ids));
    }

    public static TheoryData<string, int[]> AstralRows()
    {
        var data = new TheoryData<string, int[]>();
        foreach (var row in AstralPreTokenizerTests.Cases().Where(r => (string)r[0] == "llama3"))
        {
            data.Add((string)row[1], (int[])row[3]);
        }

        return data;
    }

    [Fact]
    public void Tiktoken_adds_bos_from_config_and_knows_added_tokens()
    {
        var tok = Tokenizer.Value;
        Assert.EndsWith("tokenizer.model", tok.Source);
        Assert.Equal(128000, tok.BosTokenId);
        Assert.Equal([128000, 9906, 1917], tok.Encode("Hello world"));
        Assert.Equal([128006, 882, 128007], tok.Encode("<|start_header_id|>user<|end_header_id|>", addSpecialTokens: false));
        Assert.Equal("ĠHello", tok.IdToToken(22691));
        Assert.Equal(22691, tok.TokenToId("ĠHello"));
        Assert.Equal(128256, tok.VocabSize);
    }
}
