using Lora;
using WordNetLora.Data;

namespace WordNetLora.Tests;

public class WordNetReaderTests
{
    [Fact]
    public void Reads_synsets_pointers_glosses_senses_and_frequencies()
    {
        var wn = WordNetFixture.Load();
        var cheap = wn.Synsets[WordNet.KeyOf("00934199", 'a')];
        Assert.Equal(["cheap", "inexpensive"], cheap.Words);
        var antonym = Assert.Single(cheap.Pointers, p => p.Symbol == "!");
        Assert.Equal(new WordNetPointer("!", "00933154", 'a', 1, 1), antonym);
        Assert.Equal("expensive", wn.Synsets[WordNet.KeyOf(antonym.TargetOffset, antonym.TargetPos)].Words[0]);
        Assert.Equal("relatively low in price or charging low prices", cheap.Definition);
        Assert.Equal(["it would have been cheap at twice the price", "inexpensive family restaurants"], cheap.Examples);

        Assert.Equal("02121620", wn.NounSenses["cat"][0]); // the most frequent sense first
        Assert.True(wn.FrequencyOf("cat", 'n') > 0);
        Assert.Equal(0, wn.FrequencyOf("poodle", 'n'));
        Assert.Equal(0, wn.FrequencyOf("cat", 'v'));
        Assert.Contains("WordNet 3.0 Copyright 2006 by Princeton University.", WordNet.LicenseText(WordNetFixture.Directory), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("01234567 00 s 02 big(a) 0 large 0 000 | above average in size", "big", "above average in size", 0)]
    [InlineData("01234567 00 n 01 ice_cream 0 001 @ 07557434 n 0000 | frozen dessert; \"she ate ice cream\"", "ice cream", "frozen dessert", 1)]
    public void Parses_a_data_line(string line, string firstWord, string definition, int examples)
    {
        var synset = WordNet.ParseDataLine(line);
        Assert.Equal(firstWord, synset.Words[0]);
        Assert.Equal(definition, synset.Definition);
        Assert.Equal(examples, synset.Examples.Count);
    }

    [Fact]
    public void A_missing_file_or_bad_line_is_a_user_error_naming_it()
    {
        var error = Assert.Throws<LoraException>(() => WordNet.Load("/nonexistent/wordnet"));
        Assert.Contains("/nonexistent/wordnet/data.noun: file not found", error.Message, StringComparison.Ordinal);
        Assert.Contains("wordnet-base", error.Message, StringComparison.Ordinal);

        var bad = Path.Combine(Path.GetTempPath(), $"wn-bad-{Guid.NewGuid():N}.adj");
        File.WriteAllText(bad, "00001740 00 a zz able\n");
        error = Assert.Throws<LoraException>(() => WordNet.ReadData(bad).ToList());
        Assert.StartsWith($"{bad}:1: not a WordNet synset line", error.Message, StringComparison.Ordinal);
    }
}
