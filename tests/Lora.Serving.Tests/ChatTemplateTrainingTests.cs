using System.Text.Json;
using System.Text.Json.Nodes;
using Lora.Chat;
using Lora.Data;
using Lora.Tokenization;

namespace Lora.Serving.Tests;

/// <summary>--template model: the model's own chat template renders training records; each assistant turn (with the
/// tokens the template closes it with) is the target, the rest is prompt.</summary>
public sealed class ChatTemplateTrainingTests
{
    private static ChatRecord Chat(params (string Role, string Content)[] messages) => new([.. messages.Select(m => new ChatMessage(m.Role, m.Content))]);

    private static string Fixture(string name) => Path.Combine(Serving.Root, "fixtures", "tokenizers", name);

    [Fact]
    public void ChatMlStyleTemplate_TargetsEachAssistantTurn_AndAddsUpToApplyChatTemplate()
    {
        // Qwen2.5-style ChatML with a default system prompt (tests/fixtures/chat_templates has the real ones).
        const string source = """
            {%- if messages[0]['role'] != 'system' %}<|im_start|>system
            You are helpful.<|im_end|>
            {% endif %}{% for m in messages %}<|im_start|>{{ m['role'] }}
            {{ m['content'] }}<|im_end|>
            {% endfor %}{% if add_generation_prompt %}<|im_start|>assistant
            {% endif %}
            """;
        var template = ChatTemplate.Parse(source, "chatml-test");
        var record = Chat(("user", "Hi"), ("assistant", "Hello!"), ("user", "Bye"), ("assistant", "See you."));
        var segments = PromptTemplate.FromChatTemplate(template).Render(record, new TemplateTokens(null, null));

        Assert.Equal(template.Render(record.Messages.Select(m => (m.Role, m.Content))), string.Concat(segments.Select(s => s.Text)));
        Assert.Equal(["Hello!<|im_end|>\n", "See you.<|im_end|>\n"], segments.Where(s => s.IsTarget).Select(s => s.Text));
        Assert.Equal("<|im_start|>system\nYou are helpful.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n", segments[0].Text);
        Assert.False(PromptTemplate.FromChatTemplate(template).AddSpecialTokens);

        // Alpaca records train as a two-turn chat; the generation prompt is the template's add_generation_prompt.
        var alpaca = PromptTemplate.FromChatTemplate(template).GenerationPrompt(new AlpacaRecord("Hi", "", ""), new TemplateTokens(null, null));
        Assert.Equal(template.Render([("user", "Hi")], addGenerationPrompt: true), alpaca);
    }

    [Fact]
    public void Qwen3Template_SingleTurnTrains_MultiTurnIsRefused()
    {
        var template = ChatTemplate.Load(Fixture("qwen3"))!;
        var chat = PromptTemplate.FromChatTemplate(template);
        var one = chat.Render(Chat(("user", "Hi"), ("assistant", "Hello")), new TemplateTokens(null, null));
        Assert.Equal("<think>\n\n</think>\n\nHello<|im_end|>\n", Assert.Single(one, s => s.IsTarget).Text);

        // Qwen3 drops earlier turns' <think> blocks once a later user turn exists: the renderings do not continue.
        var e = Assert.Throws<LoraException>(() => chat.Render(Chat(("user", "Hi"), ("assistant", "Hello"), ("user", "More"), ("assistant", "Sure")), new TemplateTokens(null, null)));
        Assert.Contains("does not render assistant turn 2 as a continuation", e.Message);
    }

    [Fact]
    public void Cli_TemplateModel_FeedsTheChatTemplatesIds_AndEvalScoresOnlyTheReplies()
    {
        var model = Serving.TempDirectory();
        foreach (var f in Directory.GetFiles(Serving.Embedded))
        {
            File.Copy(f, Path.Combine(model, Path.GetFileName(f)));
        }

        var config = JsonNode.Parse(File.ReadAllText(Path.Combine(model, "tokenizer_config.json")))!.AsObject();
        config["chat_template"] = "{{ bos_token }}{% for m in messages %}{{ m.role }}: {{ m.content }}{% if m.role == 'assistant' %}{{ eos_token }}{% endif %}{{ '\\n' }}{% endfor %}{% if add_generation_prompt %}assistant: {% endif %}";
        File.WriteAllText(Path.Combine(model, "tokenizer_config.json"), config.ToJsonString());
        var tokenizer = HfTokenizer.Load(model);

        var (code, stdout, stderr) = Serving.Cli("generate", "--model", model, "--template", "model", "--instruction", "What is the opposite of cheap?", "--max-new-tokens", "1", "--json", "--device", "cpu");
        Assert.True(code == 0, stderr);
        using (var json = JsonDocument.Parse(stdout))
        {
            Assert.Equal(tokenizer.Encode("<s>user: What is the opposite of cheap?\nassistant: ", addSpecialTokens: false), json.RootElement.GetProperty("prompt_tokens").EnumerateArray().Select(e => e.GetInt32()));
        }

        var data = Path.Combine(Serving.TempDirectory(), "chat.jsonl");
        File.WriteAllText(data, """{"messages": [{"role": "user", "content": "What is the opposite of cheap?"}, {"role": "assistant", "content": "expensive"}]}""" + "\n");
        (code, stdout, stderr) = Serving.Cli("eval", "--model", model, "--data", data, "--template", "model", "--json", "--device", "cpu");
        Assert.True(code == 0, stderr);
        using (var json = JsonDocument.Parse(stdout))
        {
            // The loss covers the reply and the eos the template closes it with (minus the shift's first-token overlap).
            var reply = tokenizer.Encode("expensive</s>\n", addSpecialTokens: false).Length;
            var tokens = json.RootElement.GetProperty("tokens").GetInt64();
            Assert.InRange(tokens, reply - 1, reply);
        }

        (code, _, stderr) = Serving.Cli("generate", "--model", Serving.Embedded, "--template", "model", "--instruction", "Hi", "--device", "cpu");
        Assert.Equal(1, code);
        Assert.Contains("--template model needs a 'chat_template'", stderr);
    }
}
