using Lora.Data;

namespace Lora.Runtime.Tests.Data;

public class TokenizedJsonlReaderTests
{
    private static string Write(string content)
    {
        var path = Path.Combine(Fixtures.TempDirectory(), "data.jsonl");
        File.WriteAllText(path, content);
        return path;
    }

    [Fact]
    public void Reads_rows_with_and_without_labels_and_skips_blank_lines()
    {
        var path = Write("{\"input_ids\":[1,2,3]}\n\n{\"input_ids\":[4,5],\"labels\":[-100,5]}\n");
        var rows = TokenizedJsonlReader.Read(path).ToList();
        Assert.Equal(2, rows.Count);
        Assert.Equal(new[] { 1, 2, 3 }, rows[0].Labels);
        Assert.Equal(2, rows[0].PredictedTokens);
        Assert.Equal(new[] { -100, 5 }, rows[1].Labels);
        Assert.Equal(1, rows[1].PredictedTokens);
    }

    [Theory]
    [InlineData("{\"input_ids\":[1,2]}\n{\"input_ids\":[1,", ":2: not valid JSON")]
    [InlineData("{\"ids\":[1]}", ":1: missing field \"input_ids\"")]
    [InlineData("{\"input_ids\":[1,\"a\"]}", ":1: \"input_ids\"[1] is not a valid token id")]
    [InlineData("{\"input_ids\":[1,-100]}", ":1: \"input_ids\"[1] is not a valid token id")]
    [InlineData("{\"input_ids\":[]}", ":1: \"input_ids\" is empty")]
    [InlineData("{\"input_ids\":[1,2],\"labels\":[1]}", ":1: \"labels\" has 1 entries but \"input_ids\" has 2")]
    [InlineData("[1,2]", ":1: expected a JSON object")]
    public void Errors_name_file_line_and_field(string content, string expected)
    {
        var path = Write(content);
        var e = Assert.Throws<LoraException>(() => TokenizedJsonlReader.Read(path).ToList());
        Assert.Contains(path + expected, e.Message, StringComparison.Ordinal);
    }
}
