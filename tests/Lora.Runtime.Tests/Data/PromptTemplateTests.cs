using Lora.Data;

namespace Lora.Runtime.Tests.Data;

public class PromptTemplateTests
{
    // tatsu-lab/stanford_alpaca train.py PROMPT_DICT, copied independently of the code under test.
    private const string StanfordPromptInput =
        "Below is an instruction that describes a task, paired with an input that provides further context. Write a response that appropriately completes the request.\n\n### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:";

    private const string StanfordPromptNoInput =
        "Below is an instruction that describes a task. Write a response that appropriately completes the request.\n\n### Instruction:\n{instruction}\n\n### Response:";

    private static readonly TemplateTokens Llama2Tokens = new("<s>", "</s>");

    [Fact]
    public void Alpaca_constants_equal_the_Stanford_strings()
    {
        Assert.Equal(StanfordPromptInput, AlpacaTemplate.PromptInput);
        Assert.Equal(StanfordPromptNoInput, AlpacaTemplate.PromptNoInput);
    }

    [Fact]
    public void Alpaca_renders_prompt_input_then_output_plus_eos()
    {
        var segments = PromptTemplate.Alpaca.Render(new AlpacaRecord("Translate to French.", "cheese", "fromage"), Llama2Tokens);
        Assert.Equal(
            [new TemplateSegment("Below is an instruction that describes a task, paired with an input that provides further context. Write a response that appropriately completes the request.\n\n### Instruction:\nTranslate to French.\n\n### Input:\ncheese\n\n### Response:", false),
             new TemplateSegment("fromage</s>", true)],
            segments);
    }

    [Fact]
    public void Alpaca_uses_prompt_no_input_only_for_an_empty_input()
    {
        var noInput = PromptTemplate.Alpaca.Render(new AlpacaRecord("Say hi.", "", "hi"), Llama2Tokens);
        Assert.Equal(StanfordPromptNoInput.Replace("{instruction}", "Say hi.", StringComparison.Ordinal), noInput[0].Text);
        var blank = PromptTemplate.Alpaca.Render(new AlpacaRecord("Say hi.", " ", "hi"), Llama2Tokens);
        Assert.Contains("### Input:\n \n\n", blank[0].Text, StringComparison.Ordinal);
    }

    [Fact]
    public void Alpaca_fills_placeholders_in_one_pass()
    {
        var segments = PromptTemplate.Alpaca.Render(new AlpacaRecord("Echo {input}", "x", "y"), Llama2Tokens);
        Assert.Contains("### Instruction:\nEcho {input}\n\n### Input:\nx\n", segments[0].Text, StringComparison.Ordinal);
    }

    private static ChatRecord TwoTurnChat() => new(
    [
        new ChatMessage("system", "You are terse."),
        new ChatMessage("user", "Hi"),
        new ChatMessage("assistant", "Hello!"),
        new ChatMessage("user", "Capital of France?"),
        new ChatMessage("assistant", "Paris."),
    ]);

    [Fact]
    public void Llama2_renders_the_meta_chat_format()
    {
        var segments = PromptTemplate.Llama2Chat.Render(TwoTurnChat(), Llama2Tokens);
        Assert.Equal(
            "<s>[INST] <<SYS>>\nYou are terse.\n<</SYS>>\n\nHi [/INST] Hello! </s><s>[INST] Capital of France? [/INST] Paris. </s>",
            string.Concat(segments.Select(s => s.Text)));
        Assert.Equal([" Hello! </s>", " Paris. </s>"], segments.Where(s => s.IsTarget).Select(s => s.Text));
        Assert.False(PromptTemplate.Llama2Chat.AddSpecialTokens);
    }

    [Fact]
    public void Llama2_rejects_turns_that_do_not_alternate()
    {
        var chat = new ChatRecord([new("user", "a"), new("user", "b")]) { Location = "chat.jsonl:7" };
        var e = Assert.Throws<LoraException>(() => PromptTemplate.Llama2Chat.Render(chat, Llama2Tokens));
        Assert.StartsWith("chat.jsonl:7: ", e.Message, StringComparison.Ordinal);
        Assert.Contains("\"messages\"[1] is \"user\"", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void ChatMl_renders_im_start_blocks_with_assistant_content_and_im_end_as_targets()
    {
        var segments = PromptTemplate.ChatMl.Render(TwoTurnChat(), new TemplateTokens(null, "<|im_end|>"));
        Assert.Equal(
            "<|im_start|>system\nYou are terse.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello!<|im_end|>\n" +
            "<|im_start|>user\nCapital of France?<|im_end|>\n<|im_start|>assistant\nParis.<|im_end|>\n",
            string.Concat(segments.Select(s => s.Text)));
        Assert.Equal(["Hello!<|im_end|>", "Paris.<|im_end|>"], segments.Where(s => s.IsTarget).Select(s => s.Text));
    }

    [Fact]
    public void Chat_templates_take_alpaca_records_as_a_two_turn_chat()
    {
        var segments = PromptTemplate.ChatMl.Render(new AlpacaRecord("Add.", "1 2", "3"), new TemplateTokens(null, "<|im_end|>"));
        Assert.Equal("<|im_start|>user\nAdd.\n\n1 2<|im_end|>\n<|im_start|>assistant\n3<|im_end|>\n", string.Concat(segments.Select(s => s.Text)));
    }

    [Fact]
    public void Alpaca_template_rejects_chat_records()
    {
        var e = Assert.Throws<LoraException>(() => PromptTemplate.Alpaca.Render(TwoTurnChat() with { Location = "c.jsonl:3" }, Llama2Tokens));
        Assert.StartsWith("c.jsonl:3: the alpaca template renders alpaca records", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Custom_template_splits_at_output_and_keeps_text_after_it_in_the_target()
    {
        var template = PromptTemplate.FromString("Q: {instruction} {{ctx: {input}}}\nA: {output}\n", noInputTemplate: "Q: {instruction}\nA:");
        var withInput = template.Render(new AlpacaRecord("why?", "sky", "blue"), Llama2Tokens);
        Assert.Equal([new TemplateSegment("Q: why? {ctx: sky}\nA: ", false), new TemplateSegment("blue\n</s>", true)], withInput);
        var noInput = template.Render(new AlpacaRecord("why?", "", "blue"), Llama2Tokens);
        Assert.Equal([new TemplateSegment("Q: why?\nA:", false), new TemplateSegment("blue</s>", true)], noInput);
    }

    [Theory]
    [InlineData("{instruction} {context}", "unknown placeholder {context}")]
    [InlineData("{instruction} {", "unmatched '{'")]
    [InlineData("{instruction} }", "unmatched '}'")]
    [InlineData("{input} {output}", "{instruction} is missing")]
    public void Custom_template_errors_name_the_problem(string template, string expected)
    {
        var e = Assert.Throws<LoraException>(() => PromptTemplate.FromString(template));
        Assert.Contains(expected, e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Parse_knows_the_built_in_names()
    {
        Assert.Same(PromptTemplate.Alpaca, PromptTemplate.Parse("alpaca"));
        Assert.Same(PromptTemplate.Llama2Chat, PromptTemplate.Parse("llama2"));
        Assert.Same(PromptTemplate.ChatMl, PromptTemplate.Parse("ChatML"));
        Assert.Equal("custom", PromptTemplate.Parse("{instruction}\n").Name);
        Assert.Contains("unknown prompt template \"vicuna\"", Assert.Throws<LoraException>(() => PromptTemplate.Parse("vicuna")).Message, StringComparison.Ordinal);
    }
}
