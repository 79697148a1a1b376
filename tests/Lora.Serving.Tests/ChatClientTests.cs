using System.Text.Json;
using System.Text.Json.Nodes;
using Lora.Extensions.AI;
using Microsoft.Extensions.AI;

namespace Lora.Serving.Tests;

/// <summary>LoraChatClient answers and streams through Microsoft.Extensions.AI's IChatClient, with the model's chat
/// template, and says what `lora generate --chat` says.</summary>
public sealed class ChatClientTests
{
    private const string Template = "{{ bos_token }}{% for m in messages %}{{ m.role }}: {{ m.content | trim }}\n{% endfor %}{% if add_generation_prompt %}assistant:{% endif %}";

    private static string ModelWithTemplate()
    {
        var dir = Serving.TempDirectory();
        foreach (var f in Directory.GetFiles(Serving.Embedded))
        {
            File.Copy(f, Path.Combine(dir, Path.GetFileName(f)));
        }

        var config = JsonNode.Parse(File.ReadAllText(Path.Combine(dir, "tokenizer_config.json")))!.AsObject();
        config["chat_template"] = Template;
        File.WriteAllText(Path.Combine(dir, "tokenizer_config.json"), config.ToJsonString());
        return dir;
    }

    [Fact]
    public async Task AnswersAndStreams_LikeGenerateChat()
    {
        var dir = ModelWithTemplate();
        using IChatClient client = new LoraChatClient(dir, device: "cpu");
        var options = new ChatOptions { MaxOutputTokens = 12 };
        List<ChatMessage> chat = [new(ChatRole.User, "The capital of Norway is")];

        var response = await client.GetResponseAsync(chat, options);
        var updates = new List<ChatResponseUpdate>();
        await foreach (var update in client.GetStreamingResponseAsync(chat, options))
        {
            updates.Add(update);
        }

        Assert.NotEmpty(response.Text);
        Assert.Equal(response.Text, string.Concat(updates.Select(u => u.Text)));
        Assert.True(updates.Count > 2, $"{updates.Count} updates");
        Assert.Equal(ChatRole.Assistant, response.Messages[0].Role);
        Assert.Equal(12, response.Usage!.OutputTokenCount);
        Assert.Equal(ChatFinishReason.Length, response.FinishReason);

        var prompt = ((LoraChatClient)client).PromptTokens(chat);
        Assert.Equal(response.Usage.InputTokenCount, prompt.Length);
        Assert.Equal(256, prompt[0]); // bos written by the template, not added twice

        var (code, stdout, stderr) = Serving.Cli("generate", "--model", dir, "--chat", "--prompt", "The capital of Norway is", "--max-new-tokens", "12", "--json", "--device", "cpu");
        Assert.True(code == 0, stderr);
        using var json = JsonDocument.Parse(stdout);
        Assert.Equal(prompt, json.RootElement.GetProperty("prompt_tokens").EnumerateArray().Select(e => e.GetInt32()));
        Assert.Equal(response.Text, json.RootElement.GetProperty("text").GetString());

        Assert.Equal("lora", client.GetService<ChatClientMetadata>()!.ProviderName);
    }

    [Fact]
    public void ModelWithoutChatTemplate_IsRefused()
    {
        var e = Assert.Throws<LoraException>(() => new LoraChatClient(Serving.Embedded, device: "cpu"));
        Assert.Contains("chat_template", e.Message);
    }
}
