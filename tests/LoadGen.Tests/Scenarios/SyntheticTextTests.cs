using LoadGen.Scenarios;

namespace LoadGen.Tests.Scenarios;

public class SyntheticTextTests
{
    [Fact]
    public void Words_SameKey_SameTextAndExactWordCount()
    {
        string a = SyntheticText.Words(42, 100);
        Assert.Equal(a, SyntheticText.Words(42, 100));
        Assert.Equal(100, a.Split(' ', StringSplitOptions.RemoveEmptyEntries).Length);
        Assert.All(a.Split(' ', StringSplitOptions.RemoveEmptyEntries), w => Assert.InRange(w.Length, 3, 5));
        Assert.NotEqual(a, SyntheticText.Words(43, 100));
    }

    [Fact]
    public void Words_IsOneDefaultTokenPerWord()
    {
        // The project's default tokenizer makes " abcde" (space + up to 5 letters) one token: check the rule's
        // letter-run shape here without depending on Gateway.Core: no word is longer than 6 characters with its space.
        string text = SyntheticText.Words(9, 500);
        int i = 0, words = 0;
        while (i < text.Length)
        {
            Assert.Equal(' ', text[i]);
            int j = i + 1;
            while (j < text.Length && char.IsAsciiLetterLower(text[j]))
            {
                j++;
            }

            Assert.InRange(j - i, 4, 6);
            words++;
            i = j;
        }

        Assert.Equal(500, words);
    }
}
