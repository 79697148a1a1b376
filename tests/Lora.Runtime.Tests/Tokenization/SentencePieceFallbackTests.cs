using System.Text.Json;
using Google.Protobuf;
using Lora.Tests;
using Lora.Tokenization;

namespace Lora.Runtime.Tests.Tokenization;

/// <summary>
/// The SentencePiece path (a model directory with <c>tokenizer.model</c> and no tokenizer.json, as older Llama 2 /
/// Mistral uploads): a SentencePiece BPE <c>ModelProto</c> written from the "llama2" fixture (Mistral's tokenizer,
/// itself converted from SentencePiece) must give HF's ids for every fixture string. SentencePiece BPE merges the
/// adjacent pair whose joined piece has the highest score, so each piece's score is minus the rank of the HF merge
/// that produces it (the converter wrote the merges in score order).
/// </summary>
public sealed class SentencePieceFallbackTests
{
    private static readonly Lazy<HfTokenizer> Tokenizer = new(() =>
    {
        var dir = TokenizerFixtures.EmptyDirectory();
        using var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(TokenizerFixtures.Directory("llama2"), "tokenizer.json")));
        var model = doc.RootElement.GetProperty("model");
        var vocab = model.GetProperty("vocab").EnumerateObject()
            .Select(e => (Piece: e.Name, Id: e.Value.GetInt32()))
            .OrderBy(e => e.Id)
            .ToList();
        var rank = new Dictionary<string, int>(StringComparer.Ordinal);
        var i = 0;
        foreach (var merge in model.GetProperty("merges").EnumerateArray())
            rank.TryAdd(merge.GetString()!.Replace(" ", string.Empty, StringComparison.Ordinal), i++);
        File.WriteAllBytes(Path.Combine(dir, "tokenizer.model"), ModelProto(vocab, p => rank.TryGetValue(p, out var r) ? -r : -i));
        File.Copy(Path.Combine(TokenizerFixtures.Directory("llama2"), "tokenizer_config.json"), Path.Combine(dir, "tokenizer_config.json"));
        return HfTokenizer.Load(dir);
    });

    public static TheoryData<int> Rows() => [.. Enumerable.Range(0, TokenizerFixtures.Expected("llama2").Count)];

    [Theory]
    [MemberData(nameof(Rows))]
    public void SentencePiece_model_gives_hf_ids(int row)
    {
        var expected = TokenizerFixtures.Expected("llama2")[row];
        Assert.EndsWith("tokenizer.model", Tokenizer.Value.Source);
        Assert.Equal(expected.Ids, Tokenizer.Value.Encode(expected.Text, addSpecialTokens: false));
        Assert.Equal(expected.IdsWithSpecial, Tokenizer.Value.Encode(expected.Text));
    }

    /// <summary>sentencepiece_model.proto, the fields a Llama-style BPE model sets.</summary>
    private static byte[] ModelProto(IReadOnlyList<(string Piece, int Id)> vocab, Func<string, float> score)
    {
        using var buffer = new MemoryStream();
        var output = new CodedOutputStream(buffer);
        foreach (var (piece, _) in vocab)
        {
            // SentencePiece.Type: NORMAL 1, UNKNOWN 2, CONTROL 3, BYTE 6.
            var type = piece == "<unk>" ? 2 : piece is "<s>" or "</s>" ? 3 : piece.StartsWith("<0x", StringComparison.Ordinal) && piece.Length == 6 ? 6 : 1;
            Message(output, 1, m =>
            {
                m.WriteTag(1, WireFormat.WireType.LengthDelimited);
                m.WriteString(piece);
                m.WriteTag(2, WireFormat.WireType.Fixed32);
                m.WriteFloat(type == 1 ? score(piece) : 0f);
                m.WriteTag(3, WireFormat.WireType.Varint);
                m.WriteEnum(type);
            });
        }

        Message(output, 2, m => // TrainerSpec
        {
            m.WriteTag(3, WireFormat.WireType.Varint);
            m.WriteEnum(2); // BPE
            m.WriteTag(4, WireFormat.WireType.Varint);
            m.WriteInt32(vocab.Count);
            m.WriteTag(35, WireFormat.WireType.Varint);
            m.WriteBool(true); // byte_fallback
            m.WriteTag(40, WireFormat.WireType.Varint);
            m.WriteInt32(0); // unk_id
            m.WriteTag(41, WireFormat.WireType.Varint);
            m.WriteInt32(1); // bos_id
            m.WriteTag(42, WireFormat.WireType.Varint);
            m.WriteInt32(2); // eos_id
        });
        Message(output, 3, m => // NormalizerSpec
        {
            m.WriteTag(1, WireFormat.WireType.LengthDelimited);
            m.WriteString("identity");
            m.WriteTag(3, WireFormat.WireType.Varint);
            m.WriteBool(true); // add_dummy_prefix
            m.WriteTag(4, WireFormat.WireType.Varint);
            m.WriteBool(false); // remove_extra_whitespaces
            m.WriteTag(5, WireFormat.WireType.Varint);
            m.WriteBool(true); // escape_whitespaces
        });
        output.Flush();
        return buffer.ToArray();
    }

    private static void Message(CodedOutputStream output, int field, Action<CodedOutputStream> write)
    {
        using var inner = new MemoryStream();
        var coded = new CodedOutputStream(inner);
        write(coded);
        coded.Flush();
        output.WriteTag(field, WireFormat.WireType.LengthDelimited);
        output.WriteBytes(ByteString.CopyFrom(inner.ToArray()));
    }
}
