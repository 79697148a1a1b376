using System.Text;
using Lora.Data;

namespace Lora.Runtime.Tests.Data;

public class DatasetReaderTests
{
    private static string Write(string name, string content)
    {
        var path = Path.Combine(Fixtures.TempDirectory(), name);
        File.WriteAllText(path, content);
        return path;
    }

    [Fact]
    public void Reads_an_alpaca_json_array_with_optional_input()
    {
        var path = Write("data.json", """
            [
              {"instruction": "Say hi.", "input": "", "output": "hi"},
              {"instruction": "Add.", "input": "1 2", "output": "3"},
              {"instruction": "No input field.", "output": "ok"},
              {"instruction": "Null input.", "input": null, "output": "ok"}
            ]
            """);
        Assert.Equal((DataFormat.Alpaca, DataLayout.JsonArray), DatasetReader.Detect(path));
        var records = DatasetReader.Read(path).Cast<AlpacaRecord>().ToList();
        Assert.Equal(
            [new AlpacaRecord("Say hi.", "", "hi"), new AlpacaRecord("Add.", "1 2", "3"), new AlpacaRecord("No input field.", "", "ok"), new AlpacaRecord("Null input.", "", "ok")],
            records.Select(r => r with { Location = "" }));
        Assert.Equal([path + ":2", path + ":3", path + ":4", path + ":5"], records.Select(r => r.Location));
    }

    [Fact]
    public void Json_array_lines_stay_right_when_records_span_buffer_refills()
    {
        var sb = new StringBuilder("\uFEFF[\n");
        for (var i = 0; i < 40; i++)
            sb.Append($"  {{\n    \"instruction\": \"{new string('x', i * 7)}\",\n    \"output\": \"o{i}\"\n  }}{(i < 39 ? "," : "")}\n");
        sb.Append("]\n");
        var path = Write("data.json", sb.ToString());
        var elements = JsonArrayReader.Read(path, bufferSize: 16).Select(e => (e.Line, Output: e.Element.GetProperty("output").GetString())).ToList();
        Assert.Equal(Enumerable.Range(0, 40).Select(i => (2L + i * 4, (string?)$"o{i}")), elements);
    }

    [Fact]
    public void Reads_jsonl_of_each_kind_and_detects_it_from_the_first_record()
    {
        var alpaca = Write("a.jsonl", "{\"instruction\":\"i\",\"output\":\"o\"}\n\n{\"instruction\":\"j\",\"input\":\"x\",\"output\":\"p\"}\n");
        var chat = Write("c.jsonl", "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"},{\"role\":\"assistant\",\"content\":\"hello\"}]}\n");
        var text = Write("t.jsonl", "{\"text\":\"doc one\"}\n{\"text\":\"doc two\"}\n");
        var tokenized = Write("k.jsonl", "{\"input_ids\":[1,2,3],\"labels\":[-100,2,3]}\n");

        Assert.Equal((DataFormat.Alpaca, DataLayout.JsonLines), DatasetReader.Detect(alpaca));
        Assert.Equal(["i", "j"], DatasetReader.Read(alpaca).Cast<AlpacaRecord>().Select(r => r.Instruction));
        Assert.Equal(alpaca + ":3", DatasetReader.Read(alpaca).Last().Location);

        Assert.Equal((DataFormat.Chat, DataLayout.JsonLines), DatasetReader.Detect(chat));
        var messages = Assert.IsType<ChatRecord>(Assert.Single(DatasetReader.Read(chat))).Messages;
        Assert.Equal([new ChatMessage("user", "hi"), new ChatMessage("assistant", "hello")], messages);

        Assert.Equal((DataFormat.Text, DataLayout.JsonLines), DatasetReader.Detect(text));
        Assert.Equal(["doc one", "doc two"], DatasetReader.Read(text).Cast<TextRecord>().Select(r => r.Text));

        Assert.Equal((DataFormat.Tokenized, DataLayout.JsonLines), DatasetReader.Detect(tokenized));
        Assert.Equal([-100, 2, 3], Assert.IsType<TokenizedRecord>(Assert.Single(DatasetReader.Read(tokenized))).Example.Labels);
    }

    [Fact]
    public void A_json_array_of_chats_and_a_json_file_holding_jsonl_are_read()
    {
        var array = Write("chats.json", "[{\"messages\":[{\"role\":\"user\",\"content\":\"q\"},{\"role\":\"assistant\",\"content\":\"a\"}]}]");
        Assert.Equal((DataFormat.Chat, DataLayout.JsonArray), DatasetReader.Detect(array));
        var lines = Write("rows.json", "{\"instruction\":\"i\",\"output\":\"o\"}\n");
        Assert.Equal((DataFormat.Alpaca, DataLayout.JsonLines), DatasetReader.Detect(lines));
    }

    [Fact]
    public void Plain_text_is_read_line_by_line_keeping_line_breaks()
    {
        var path = Write("corpus.txt", "first line\nsecond {not json}\nlast");
        Assert.Equal((DataFormat.Text, DataLayout.PlainText), DatasetReader.Detect(path));
        var lines = DatasetReader.Read(path).Cast<TextLine>().ToList();
        Assert.Equal(["first line\n", "second {not json}\n", "last"], lines.Select(l => l.Text));
        Assert.Equal(path + ":2", lines[1].Location);
    }

    [Fact]
    public void An_explicit_format_overrides_detection()
    {
        var path = Write("rows.jsonl", "{\"text\":\"t\",\"instruction\":\"i\",\"output\":\"o\"}\n");
        Assert.IsType<AlpacaRecord>(Assert.Single(DatasetReader.Read(path)));
        Assert.IsType<TextRecord>(Assert.Single(DatasetReader.Read(path, DataFormat.Text)));
        var txt = Write("notes.txt", "hello");
        Assert.Contains("can only be read as text", Assert.Throws<LoraException>(() => DatasetReader.Read(txt, DataFormat.Alpaca)).Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("data.json", "[\n{\"instruction\":\"a\",\"output\":\"b\"},\n{\"instruction\":\"a\"}\n]", ":3: missing field \"output\"")]
    [InlineData("data.json", "[\n{\"instruction\":\"a\",\"output\":\"b\"},\n{\"output\":\"b\", \"input\": \"\"}\n]", ":3: missing field \"instruction\"")]
    [InlineData("data.json", "[\n{\"instruction\":\"a\",\"output\":\"b\"},\n\n{\"instruction\":5,\"output\":\"b\"}\n]", ":4: field \"instruction\" must be a string, got a number")]
    [InlineData("data.json", "[\n{\"instruction\":\"a\",\"output\":\"b\"},\n{\"instruction\":\"a\",\"output\":\"b\",}\n]", ":3: not valid JSON")]
    [InlineData("data.json", "[\n{\"instruction\":\"a\",\"output\":\"b\"},\n{\"instruction\":\"a\",\"output\":\"b\"}", ":3: not valid JSON")]
    [InlineData("data.json", "[\n{\"instruction\":\"a\",\"output\":\"b\"},\n42\n]", ":3: expected a JSON object, got a number")]
    [InlineData("data.json", "[{\"instruction\":\"a\",\"output\":\"b\"}] x", ":1: not valid JSON")]
    [InlineData("data.json", "nope", ":1: not valid JSON")]
    [InlineData("data.jsonl", "{\"instruction\":\"a\",\"output\":\"b\"}\n{\"instruction\":\"a\",\"input\":[1],\"output\":\"b\"}", ":2: field \"input\" must be a string, got an array")]
    [InlineData("data.jsonl", "{\"instruction\":\"a\",\"output\":\"b\"}\n{\"instruction\":\"a\",\"output\":", ":2: not valid JSON")]
    [InlineData("chat.jsonl", "{\"messages\":[{\"role\":\"user\",\"content\":\"q\"}]}\n{\"messages\":[{\"role\":\"bot\",\"content\":\"q\"}]}", ":2: \"messages\"[0].role must be one of system, user, assistant, got \"bot\"")]
    [InlineData("chat.jsonl", "{\"messages\":[{\"role\":\"user\"}]}", ":1: missing field \"messages\"[0].\"content\"")]
    [InlineData("chat.jsonl", "{\"messages\":{}}", ":1: field \"messages\" must be an array, got an object")]
    [InlineData("chat.jsonl", "{\"messages\":[]}", ":1: field \"messages\" is empty")]
    [InlineData("text.jsonl", "{\"text\":\"a\"}\n{\"text\":null}", ":2: field \"text\" must be a string, got null")]
    [InlineData("odd.jsonl", "{\"prompt\":\"a\",\"completion\":\"b\"}", ":1: cannot tell the dataset format from the first record (\"prompt\", \"completion\")")]
    [InlineData("empty.json", "", ": no examples")]
    [InlineData("empty.jsonl", "\n\n", ": no examples")]
    [InlineData("empty.json", "[ ]", ": no examples")]
    [InlineData("empty.txt", "", ": no examples")]
    public void Errors_name_file_line_and_field(string name, string content, string expected)
    {
        var path = Write(name, content);
        var e = Assert.Throws<LoraException>(() => DatasetReader.Read(path, name == "empty.json" && content == "[ ]" ? DataFormat.Alpaca : DataFormat.Auto).ToList());
        Assert.Contains(path + expected, e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Missing_file_is_reported()
    {
        var path = Path.Combine(Fixtures.TempDirectory(), "absent.json");
        Assert.Equal(path + ": file not found.", Assert.Throws<LoraException>(() => DatasetReader.Read(path)).Message);
    }

    [Fact]
    public void A_large_json_array_streams_record_by_record()
    {
        const int count = 200_000;
        var path = Path.Combine(Fixtures.TempDirectory(), "big.json");
        using (var writer = new StreamWriter(path))
        {
            writer.Write("[\n");
            for (var i = 0; i < count; i++)
                writer.Write($"{{\"instruction\": \"Repeat {i}.\", \"input\": \"\", \"output\": \"{i}\"}},\n");
            writer.Write("{\"instruction\": \"broken\"}\n]\n"); // the last record is bad: only a full read can see it
        }

        using (var enumerator = DatasetReader.Read(path).GetEnumerator())
        {
            for (var i = 0; i < 3; i++)
            {
                Assert.True(enumerator.MoveNext());
                Assert.Equal($"{i}", ((AlpacaRecord)enumerator.Current).Output);
            }
        }

        var seen = 0L;
        var e = Assert.Throws<LoraException>(() =>
        {
            foreach (var record in DatasetReader.Read(path))
                seen++;
        });
        Assert.Equal(count, seen);
        Assert.Contains($"{path}:{count + 2}: missing field \"output\"", e.Message, StringComparison.Ordinal);
    }
}
