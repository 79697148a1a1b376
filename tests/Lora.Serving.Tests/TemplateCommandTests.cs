namespace Lora.Serving.Tests;

/// <summary><c>lora template</c>: the chat template's rendering, as apply_chat_template(tokenize=False).</summary>
public sealed class TemplateCommandTests
{
    private static string Qwen3 => Path.Combine(Serving.Root, "fixtures", "tokenizers", "qwen3");

    private static string Messages(string json)
    {
        var path = Path.Combine(Serving.TempDirectory(), "messages.json");
        File.WriteAllText(path, json);
        return path;
    }

    [Fact]
    public void RendersJson_WithGenerationPrompt()
    {
        var file = Messages("""[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi <é>"}]""");
        var (code, stdout, stderr) = Serving.Cli("template", "--tokenizer", Qwen3, "--messages", file, "--add-generation-prompt", "--json");
        Assert.True(code == 0, stderr);
        Assert.Equal("""{"text":"<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi <é><|im_end|>\n<|im_start|>assistant\n"}""" + "\n", stdout);
    }

    [Fact]
    public void ObjectForm_PassesVariables()
    {
        var file = Messages("""{"messages": [{"role": "user", "content": "Hi"}], "add_generation_prompt": true, "enable_thinking": false}""");
        var (code, stdout, stderr) = Serving.Cli("template", "--tokenizer", Qwen3, "--messages", file);
        Assert.True(code == 0, stderr);
        Assert.Equal("<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n", stdout);
    }

    [Fact]
    public void Errors_AreOneLine()
    {
        var (code, stdout, stderr) = Serving.Cli("template", "--tokenizer", Serving.Embedded, "--messages", Messages("[]"));
        Assert.Equal(1, code);
        Assert.Equal("", stdout);
        Assert.Contains("no 'chat_template'", stderr);

        (code, _, stderr) = Serving.Cli("template", "--tokenizer", Qwen3, "--messages", Messages("[{\"role\": \"user\""));
        Assert.Equal(1, code);
        Assert.StartsWith("error: ", stderr);
        Assert.Contains("not valid JSON (line 1", stderr);
        Assert.Single(stderr.Trim().Split('\n'));
    }
}
