using Lora.Chat;
using Lora.Extensions.AI;
using Microsoft.Extensions.AI;
using ServeSample;

namespace Lora.Serving.Tests;

/// <summary>samples/ServeSample: its command line, its Alpaca chat template, and one streamed answer end to end.</summary>
public sealed class ServeSampleTests
{
    private static string AlpacaJinja => Path.Combine(Serving.Root, "alpaca.jinja");

    private static async Task<(int Code, string Out, string Err)> Run(string input, params string[] args)
    {
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        var code = await ServeSampleApp.RunAsync(args, new StringReader(input), stdout, stderr);
        return (code, stdout.ToString(), stderr.ToString());
    }

    [Fact]
    public void AlpacaTemplate_RendersStanfordPrompt_ForTheLastUserMessage()
    {
        var template = ChatTemplate.LoadFile(AlpacaJinja, Serving.Embedded);
        var text = template.Render([("system", "Be brief."), ("user", "first"), ("assistant", "x"), ("user", "What is the opposite of hot?")], addGenerationPrompt: true);
        Assert.Equal(
            "<s>Below is an instruction that describes a task. Write a response that appropriately completes the request.\n\n" +
            "### Instruction:\nWhat is the opposite of hot?\n\n### Response:",
            text);
        var training = template.Render([("user", "Opposite of hot?"), ("assistant", "cold")]);
        Assert.EndsWith("### Instruction:\nOpposite of hot?\n\n### Response:cold</s>", training);
    }

    [Fact]
    public void AlpacaTemplate_FeedsTheIdsOf_GenerateTemplateAlpaca()
    {
        const string instruction = "What is the opposite of cheap?";
        using var client = new LoraChatClient(Serving.Embedded, device: "cpu", chatTemplate: ChatTemplate.LoadFile(AlpacaJinja, Serving.Embedded));
        var ids = client.PromptTokens([new(ChatRole.System, "You are a helpful assistant."), new(ChatRole.User, instruction)]);

        var (code, stdout, stderr) = Serving.Cli("generate", "--model", Serving.Embedded, "--template", "alpaca", "--instruction", instruction, "--max-new-tokens", "1", "--json", "--device", "cpu");
        Assert.True(code == 0, stderr);
        using var json = System.Text.Json.JsonDocument.Parse(stdout);
        Assert.Equal(json.RootElement.GetProperty("prompt_tokens").EnumerateArray().Select(e => e.GetInt32()), ids);
    }

    [Fact]
    public async Task OnePrompt_StreamsAnAnswer_ThroughIChatClient()
    {
        var (code, stdout, stderr) = await Run("", Serving.Embedded, "--chat-template", AlpacaJinja, "--prompt", "The capital of Norway is", "--max-tokens", "6", "--device", "cpu");
        Assert.True(code == 0, stderr);
        var lines = stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal("[6 tokens, finish: length]", lines[^1]);

        // What the sample printed is what the client answers for the same conversation.
        using var client = new LoraChatClient(Serving.Embedded, device: "cpu", chatTemplate: ChatTemplate.LoadFile(AlpacaJinja, Serving.Embedded));
        var response = await client.GetResponseAsync(
            [new(ChatRole.System, "You are a helpful assistant."), new(ChatRole.User, "The capital of Norway is")],
            new ChatOptions { MaxOutputTokens = 6 });
        Assert.Equal(response.Text + "\n[6 tokens, finish: length]\n", stdout);
    }

    [Fact]
    public async Task Interactive_ReadsLinesUntilAnEmptyOne()
    {
        var (code, stdout, stderr) = await Run("hello\nagain\n\nnot read\n", Serving.Embedded, "--chat-template", AlpacaJinja, "--max-tokens", "2", "--device", "cpu");
        Assert.True(code == 0, stderr);
        Assert.StartsWith("chatting with wordnet-llama (empty line to quit)\n", stdout);
        Assert.Equal(2, stdout.Split('\n').Count(l => l.StartsWith("[2 tokens", StringComparison.Ordinal)));
    }

    [Fact]
    public async Task Mistakes_AreClearErrors()
    {
        var (code, _, stderr) = await Run("");
        Assert.Equal(2, code);
        Assert.StartsWith("error: MODEL_DIR is required\nusage: ServeSample", stderr);

        (code, _, stderr) = await Run("", Serving.Embedded, "--max-tokens", "0");
        Assert.Equal(2, code);
        Assert.StartsWith("error: --max-tokens must be a positive integer, not '0'", stderr);

        (code, _, stderr) = await Run("", Serving.Embedded, "--prompt", "hi", "--device", "cpu");
        Assert.Equal(1, code);
        Assert.Contains("no 'chat_template'", stderr);
        Assert.Contains("ChatTemplate.LoadFile", stderr);

        (code, _, stderr) = await Run("", Serving.Embedded, "--chat-template", "missing.jinja", "--prompt", "hi", "--device", "cpu");
        Assert.Equal(1, code);
        Assert.Equal("error: missing.jinja: chat template file not found.\n", stderr);
    }
}
