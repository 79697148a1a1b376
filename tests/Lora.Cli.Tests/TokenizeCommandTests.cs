using System.Text.Json;
using Lora.Cli;
using Lora.Tests;

namespace Lora.Cli.Tests;

/// <summary><c>lora tokenize</c> against the HF reference ids of the tokenizer fixtures.</summary>
public sealed class TokenizeCommandTests
{
    [Theory]
    [InlineData("llama2")]
    [InlineData("llama3")]
    [InlineData("qwen3")]
    public void Json_output_is_one_object_with_hf_ids(string name)
    {
        var expected = TokenizerFixtures.Expected(name)[2];
        var (code, stdout, stderr) = Run("tokenize", "--tokenizer", TokenizerFixtures.Directory(name), "--text", expected.Text, "--json");

        Assert.Equal(0, code);
        Assert.Equal("", stderr);
        Assert.Single(stdout.TrimEnd('\n').Split('\n'));
        using var json = JsonDocument.Parse(stdout);
        Assert.Equal(["ids"], json.RootElement.EnumerateObject().Select(p => p.Name));
        Assert.Equal(expected.IdsWithSpecial, json.RootElement.GetProperty("ids").EnumerateArray().Select(e => e.GetInt32()));
    }

    [Fact]
    public void No_special_leaves_out_bos()
    {
        var expected = TokenizerFixtures.Expected("llama2")[0];
        var (code, stdout, _) = Run("tokenize", "--tokenizer", TokenizerFixtures.Directory("llama2"), "--text", expected.Text, "--no-special", "--json");

        Assert.Equal(0, code);
        using var json = JsonDocument.Parse(stdout);
        Assert.Equal(expected.Ids, json.RootElement.GetProperty("ids").EnumerateArray().Select(e => e.GetInt32()));
        Assert.NotEqual(expected.Ids, expected.IdsWithSpecial);
    }

    [Fact]
    public void Human_output_lists_ids_and_tokens()
    {
        var (code, stdout, stderr) = Run("tokenize", "--tokenizer", TokenizerFixtures.Directory("llama2"), "--text", "Hello world");

        Assert.Equal(0, code);
        Assert.Equal("", stderr);
        Assert.Contains("ids: [1, 22557, 1526]", stdout);
        Assert.Contains("22557  ▁Hello", stdout);
        Assert.Contains("<s>", stdout);
    }

    [Fact]
    public void Missing_directory_is_one_error_line_and_exit_1()
    {
        var missing = Path.Combine(TokenizerFixtures.EmptyDirectory(), "no-such-model");
        var (code, stdout, stderr) = Run("tokenize", "--tokenizer", missing, "--text", "hi", "--json");

        Assert.Equal(1, code);
        Assert.Equal("", stdout);
        var line = Assert.Single(stderr.TrimEnd('\n').Split('\n'));
        Assert.StartsWith("error: ", line);
        Assert.Contains(missing, line);
    }

    [Fact]
    public void Directory_without_tokenizer_json_is_an_error()
    {
        var (code, stdout, stderr) = Run("tokenize", "--tokenizer", TokenizerFixtures.EmptyDirectory(), "--text", "hi");

        Assert.Equal(1, code);
        Assert.Equal("", stdout);
        Assert.Matches("^error: .*tokenizer.json: not found", stderr);
    }

    private static (int Code, string Stdout, string Stderr) Run(params string[] args)
    {
        using var stdout = new StringWriter { NewLine = "\n" };
        using var stderr = new StringWriter { NewLine = "\n" };
        var code = LoraCli.Run(args, stdout, stderr);
        return (code, stdout.ToString(), stderr.ToString());
    }
}
