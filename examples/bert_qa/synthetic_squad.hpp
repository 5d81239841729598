// The synthetic SQuAD task of bert_qa --demo (and make_synthetic_squad): writes train.json and dev.json, a SQuAD v1.1 question-answering set about
// invented people, companies and creatures, small and regular enough that a tiny BERT trained from scratch learns it in minutes. Names are built from
// syllables, so no answer can come from real-world knowledge: it has to be read.
//
//   make_synthetic_squad [--output_dir DIR] [--seed 42] [--train_paragraphs 6000] [--dev_paragraphs 300]
//                        [--entities_per_paragraph 1..4] [--questions_per_paragraph K]
//
// A paragraph describes N entities of one kind, one fact per sentence in a random phrasing, sentences shuffled.
// With N = 1 each answer's surface type (a year, a colour, an invented place...) picks out its span; with N > 1
// every entity gets the same fact types, so the model must also match the entity named in the question.
//
// The same flags give byte-identical files everywhere: all randomness comes from the SplitMix64 below (the
// standard library's distributions differ between implementations), drawn in an order fixed by statements.
#pragma once

#include <mpt/core/error.hpp>
#include <mpt/core/random.hpp>
#include <mpt/io/file.hpp>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <set>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <unordered_set>
#include <vector>

namespace bert_qa {

struct SyntheticSquadOptions {
  std::uint64_t seed = 42;
  int train_paragraphs = 6000;      // about 34,000 questions
  int dev_paragraphs = 300;         // about 1,700 questions
  int entities_per_paragraph = 1;   // 1..4; above 1 the question's entity must be matched
  int questions_per_paragraph = 0;  // 0: one per fact, at most 6; up to 27
};

struct SyntheticSquadSummary {
  std::filesystem::path train, dev;
  std::size_t train_paragraphs = 0, train_questions = 0, dev_paragraphs = 0, dev_questions = 0;
};

namespace synthetic {

// Draws from mpt::SplitMix64, the same sequence on every platform (the standard library's
// distributions and std::shuffle differ between implementations).
class SplitMix64 {
 public:
  explicit SplitMix64(std::uint64_t seed) : generator_{seed} {}
  std::uint64_t next() { return generator_.next(); }
  // Uniform in [0, n), without bias.
  std::uint64_t below(std::uint64_t n) {
    if (n == 0) throw std::logic_error("SplitMix64::below(0)");
    return generator_.below(n);
  }
  int between(int lo, int hi) {  // inclusive
    return lo + static_cast<int>(below(static_cast<std::uint64_t>(hi - lo) + 1));
  }
  bool one_in(std::uint64_t n) { return below(n) == 0; }
  template <class T>
  const T& pick(const std::vector<T>& items) {
    return items[below(items.size())];
  }
  // Fisher-Yates.
  template <class T>
  void shuffle(std::vector<T>& items) {
    for (std::size_t i = items.size(); i > 1; --i) std::swap(items[i - 1], items[below(i)]);
  }

 private:
  mpt::SplitMix64 generator_;
};

// A seed per split, so the dev set does not change when --train_paragraphs does.
inline std::uint64_t stream_seed(std::uint64_t seed, std::uint64_t stream) {
  SplitMix64 mixer(seed ^ (stream * 0xD1B54A32D192ED03ULL));
  return mixer.next();
}

// ---------------------------------------------------------------------------------------------------------------
// Invented names. Each kind of name has its own endings so that, e.g., a home city looks unlike a person.

inline const std::vector<std::string> kOnsets = {"b", "br", "d",  "dr", "f", "g",  "gr", "h",  "k", "kr", "l",  "m",
                                                 "n", "p",  "pr", "r",  "s", "st", "t",  "tr", "v", "z",  "th", "sh"};
inline const std::vector<std::string> kVowels = {"a", "e", "i", "o", "u", "a", "e", "o", "ai", "ou", "ei"};
inline const std::vector<std::string> kCodas = {"n", "r", "l", "s", "k", "m", "th", "x", "nd", "rn"};

inline std::string syllables(SplitMix64& rng, int count, bool coda) {
  std::string word;
  for (int i = 0; i < count; ++i) {
    word += rng.pick(kOnsets);  // one draw per statement: operand order of a + b is unspecified
    word += rng.pick(kVowels);
  }
  if (coda) word += rng.pick(kCodas);
  word[0] = static_cast<char>(word[0] - 'a' + 'A');
  return word;
}

inline std::string person_name(SplitMix64& rng) {
  const int count = rng.between(2, 3);
  const bool coda = rng.one_in(2);
  return syllables(rng, count, coda);
}

inline std::string suffixed_name(SplitMix64& rng, const std::vector<std::string>& suffixes) {
  const int count = rng.between(1, 2);
  std::string name = syllables(rng, count, false);
  name += rng.pick(suffixes);
  return name;
}

inline const std::vector<std::string> kPlaceSuffixes = {"dale", "mere",  "holt", "wick",  "port", "burg",
                                                        "ford", "haven", "moor", "field", "gate", "stead"};
inline const std::vector<std::string> kCompanySuffixes = {"tex", "corp", "dyne", "lux", "vane", "tron", "ware", "mont"};
inline const std::vector<std::string> kCreatureSuffixes = {"wump", "lisk", "mander", "pod", "snout", "fin", "back", "horn"};

inline std::string place_name(SplitMix64& rng) { return suffixed_name(rng, kPlaceSuffixes); }

// ---------------------------------------------------------------------------------------------------------------
// Fact types. A template holds {E} (the entity), {A} (the answer; statements only) and {an} ("a" or "an" for the
// answer that follows it). Within one kind the value lists are disjoint, so an answer's words name its fact type.

using ValueMaker = std::function<std::string(SplitMix64&)>;

struct FactType {
  std::string name;
  ValueMaker make_value;
  std::vector<std::string> statements;  // each yields one sentence of the context
  std::vector<std::string> questions;
};

struct EntityKind {
  std::string name;
  ValueMaker make_name;
  std::vector<FactType> facts;
  std::vector<std::string> fillers;  // sentences that answer nothing
};

inline ValueMaker integer_in(int lo, int hi) {
  return [lo, hi](SplitMix64& rng) { return std::to_string(rng.between(lo, hi)); };
}

inline ValueMaker word_from(std::vector<std::string> words) {
  return [words = std::move(words)](SplitMix64& rng) { return rng.pick(words); };
}

inline const std::vector<std::string> kColours = {"red",   "blue",  "green",  "yellow", "orange", "purple", "pink",   "brown",  "grey",
                                                  "black", "white", "silver", "teal",   "violet", "amber",  "indigo", "crimson"};

inline std::vector<EntityKind> make_entity_kinds() {
  std::vector<EntityKind> kinds;

  kinds.push_back(EntityKind{
      "person",
      person_name,
      {
          {"birth_year",
           integer_in(1600, 1999),
           {"{E} was born in {A}.", "{E}'s birth year is {A}.", "In {A}, {E} was born."},
           {"When was {E} born?", "In what year was {E} born?", "What is {E}'s year of birth?"}},
          {"home_city",
           place_name,
           {"{E} lives in {A}.", "{E} makes a home in the city of {A}.", "The city of {A} is where {E} lives."},
           {"Where does {E} live?", "In which city does {E} live?", "What city is {E}'s home?"}},
          {"profession",
           word_from({"baker",     "carpenter", "teacher", "astronomer", "engineer",   "gardener",   "librarian", "fisherman",
                      "architect", "nurse",     "pilot",   "tailor",     "blacksmith", "chemist",    "painter",   "sailor",
                      "potter",    "judge",     "farmer",  "surgeon",    "translator", "electrician"}),
           {"{E} works as {an} {A}.", "By profession, {E} is {an} {A}.", "{E} earns a living as {an} {A}."},
           {"What does {E} do for a living?", "What is {E}'s profession?", "What job does {E} have?"}},
          {"favourite_colour",
           word_from(kColours),
           {"{E}'s favourite colour is {A}.", "{E} likes the colour {A} best.", "Of all colours, {E} prefers {A}."},
           {"What is {E}'s favourite colour?", "Which colour does {E} like best?", "What colour does {E} prefer?"}},
          {"siblings",
           word_from({"two", "three", "four", "five", "six", "seven", "eight", "nine"}),
           {"{E} has {A} siblings.", "{E} grew up with {A} brothers and sisters.", "There are {A} siblings besides {E} in the family."},
           {"How many siblings does {E} have?", "How many brothers and sisters does {E} have?", "With how many siblings did {E} grow up?"}},
          {"instrument",
           word_from({"violin", "cello", "flute", "piano", "guitar", "harp", "trumpet", "clarinet", "oboe", "drums", "accordion", "banjo",
                      "saxophone", "trombone", "mandolin", "harmonica"}),
           {"{E} plays the {A}.", "{E} has played the {A} since childhood.", "In the evenings, {E} practises the {A}."},
           {"What instrument does {E} play?", "Which musical instrument does {E} play?", "What instrument does {E} practise?"}},
          {"pet",
           word_from(
               {"cat", "dog", "parrot", "rabbit", "tortoise", "hamster", "ferret", "canary", "lizard", "goat", "pony", "snake", "duck", "iguana"}),
           {"{E} keeps a pet {A}.", "{E} owns {an} {A} as a pet.", "A pet {A} lives with {E}."},
           {"What pet does {E} keep?", "What kind of animal is {E}'s pet?", "Which animal does {E} own as a pet?"}},
          {"height_cm",
           integer_in(150, 199),
           {"{E} is {A} centimetres tall.", "{E} stands {A} centimetres tall.", "{E}'s height is {A} centimetres."},
           {"How tall is {E}?", "What is {E}'s height in centimetres?", "How many centimetres tall is {E}?"}},
      },
      {"Friends describe {E} as patient and generous.", "{E} enjoys long walks on quiet mornings.", "Neighbours often ask {E} for advice.",
       "{E} rarely misses a local festival."}});

  kinds.push_back(EntityKind{
      "company",
      [](SplitMix64& rng) { return suffixed_name(rng, kCompanySuffixes); },
      {
          {"founding_year",
           integer_in(1800, 2020),
           {"{E} was founded in {A}.", "{E} opened its doors in {A}.", "Since {A}, {E} has been in business."},
           {"When was {E} founded?", "In what year was {E} established?", "What year did {E} open its doors?"}},
          {"headquarters",
           place_name,
           {"{E} has its headquarters in {A}.", "{E} is based in {A}.", "The main office of {E} is in {A}."},
           {"Where is {E} based?", "Where are the headquarters of {E}?", "In which city is the main office of {E}?"}},
          {"product",
           word_from({"bicycles", "lanterns", "umbrellas", "clocks", "candles", "kettles", "saddles", "telescopes", "blankets", "shoes", "chairs",
                      "maps", "bells", "buttons", "ladders", "baskets", "radios"}),
           {"{E} makes {A}.", "{E} is best known for its {A}.", "The factories of {E} produce {A}."},
           {"What does {E} make?", "What product is {E} known for?", "What do the factories of {E} produce?"}},
          {"employees",
           integer_in(40, 990),
           {"{E} employs {A} people.", "{E} has {A} workers.", "About {A} people work for {E}."},
           {"How many people does {E} employ?", "How many workers does {E} have?", "How many people work for {E}?"}},
          {"founder",
           person_name,
           {"{E} was started by {A}.", "{A} founded {E}.", "The founder of {E} is {A}."},
           {"Who started {E}?", "Who founded {E}?", "Who is the founder of {E}?"}},
          {"logo_colour",
           word_from(kColours),
           {"The logo of {E} is {A}.", "{E} paints its logo {A}.", "{E} uses a logo coloured {A}."},
           {"What colour is the logo of {E}?", "What is the colour of {E}'s logo?", "Which colour does {E} use for its logo?"}},
          {"mascot",
           word_from({"fox", "owl", "bear", "wolf", "eagle", "otter", "badger", "heron", "lion", "tiger", "whale", "hawk", "elk", "beaver"}),
           {"The mascot of {E} is {an} {A}.", "{E} has {an} {A} as its mascot.", "{An} {A} is the mascot of {E}."},
           {"What is the mascot of {E}?", "Which animal is {E}'s mascot?", "What animal does {E} have as a mascot?"}},
      },
      {"{E} is well regarded by its customers.", "Travellers often pass the offices of {E}.", "{E} sponsors a choir in the region."}});

  kinds.push_back(EntityKind{
      "creature",
      [](SplitMix64& rng) { return suffixed_name(rng, kCreatureSuffixes); },
      {
          {"discovery_year",
           integer_in(1700, 2015),
           {"The {E} was first described in {A}.", "Scientists discovered the {E} in {A}.", "In {A}, the {E} was first recorded."},
           {"When was the {E} discovered?", "In what year was the {E} first described?", "What year was the {E} first recorded?"}},
          {"habitat",
           place_name,
           {"The {E} lives in the hills of {A}.", "The {E} is found only near {A}.", "{A} is home to the {E}."},
           {"Where does the {E} live?", "Where is the {E} found?", "What place is home to the {E}?"}},
          {"diet",
           word_from({"berries", "insects", "fish", "seeds", "moss", "leaves", "roots", "snails", "nuts", "mushrooms", "worms", "grass", "bark",
                      "beetles", "crabs", "algae"}),
           {"The {E} eats {A}.", "The {E} feeds mostly on {A}.", "The diet of the {E} consists of {A}."},
           {"What does the {E} eat?", "What does the {E} feed on?", "What is the diet of the {E}?"}},
          {"legs",
           word_from({"two", "four", "six", "eight", "ten", "twelve", "fourteen", "sixteen"}),
           {"The {E} has {A} legs.", "The {E} walks on {A} legs.", "Each {E} has {A} legs."},
           {"How many legs does the {E} have?", "On how many legs does the {E} walk?", "What is the number of legs of the {E}?"}},
          {"fur_colour",
           word_from(kColours),
           {"The {E} has {A} fur.", "The fur of the {E} is {A}.", "The {E} is covered in {A} fur."},
           {"What colour is the fur of the {E}?", "What colour is the {E}'s fur?", "What is the fur colour of the {E}?"}},
          {"lifespan_years",
           integer_in(3, 150),
           {"The {E} lives for about {A} years.", "A typical {E} lives {A} years.", "The {E} can reach an age of {A} years."},
           {"How long does the {E} live?", "What is the lifespan of the {E}?", "How many years does the {E} live?"}},
          {"sound",
           word_from({"whistling", "humming", "clicking", "croaking", "chirping", "growling", "rattling", "hissing", "buzzing", "squeaking",
                      "booming", "trilling"}),
           {"The {E} makes a {A} sound.", "When alarmed, the {E} gives a {A} call.", "The {E} is known for its {A} cry."},
           {"What sound does the {E} make?", "What kind of call does the {E} give?", "What is the cry of the {E} like?"}},
      },
      {"The {E} is rarely seen by travellers.", "Little is written about the habits of the {E}.", "Local stories often mention the {E}."}});

  return kinds;
}

// Catches a mistyped template at startup rather than as a wrong answer_start in the data.
inline void validate_templates(const std::vector<EntityKind>& kinds) {
  const auto count = [](std::string_view text, std::string_view what) {
    std::size_t n = 0;
    for (auto at = text.find(what); at != std::string_view::npos; at = text.find(what, at + 1)) ++n;
    return n;
  };
  const auto require = [](bool ok, const std::string& text, const char* why) {
    if (!ok) throw std::logic_error("template \"" + text + "\": " + why);
  };
  for (const auto& kind : kinds) {
    for (const auto& fact : kind.facts) {
      require(fact.statements.size() >= 3 && fact.questions.size() >= 3, fact.name, "needs 3+ phrasings of each");
      for (const auto& s : fact.statements) {
        require(count(s, "{A}") == 1 && count(s, "{E}") == 1, s, "needs one {A} and one {E}");
        require(s.back() == '.', s, "must end with '.'");
      }
      for (const auto& q : fact.questions) {
        require(count(q, "{A}") == 0 && count(q, "{E}") == 1, q, "needs one {E} and no {A}");
        require(q.back() == '?', q, "must end with '?'");
      }
    }
    for (const auto& f : kind.fillers) require(count(f, "{A}") == 0 && count(f, "{E}") == 1, f, "needs one {E}");
  }
}

struct Rendered {
  std::string text;
  std::size_t answer_offset = std::string::npos;  // where {A} landed in text
};

inline Rendered render(std::string_view tmpl, std::string_view entity, std::string_view answer) {
  const bool vowel = !answer.empty() && std::string_view("aeiou").find(answer[0]) != std::string_view::npos;
  Rendered out;
  for (std::size_t i = 0; i < tmpl.size();) {
    const std::string_view rest = tmpl.substr(i);
    if (rest.starts_with("{E}")) {
      out.text += entity;
      i += 3;
    } else if (rest.starts_with("{A}")) {
      out.answer_offset = out.text.size();
      out.text += answer;
      i += 3;
    } else if (rest.starts_with("{an}")) {
      out.text += vowel ? "an" : "a";
      i += 4;
    } else if (rest.starts_with("{An}")) {
      out.text += vowel ? "An" : "A";
      i += 4;
    } else {
      out.text += tmpl[i++];
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------------
// Paragraphs.

struct QuestionAnswer {
  std::string id, question, answer;
  std::size_t answer_start = 0;
};

struct Paragraph {
  std::string title, context;
  std::vector<QuestionAnswer> qas;
};

struct GeneratorOptions {
  int entities_per_paragraph = 1;
  int questions_per_paragraph = 0;  // 0: one per fact, at most kDefaultMaxQuestions
};

inline constexpr int kDefaultMaxQuestions = 6;

// Fact types per paragraph for N > 1 entities, chosen so that N * types stays near the 5-7 facts of N = 1 and the
// context keeps its length.
inline int fact_types_for(int entities, SplitMix64& rng, std::size_t available) {
  if (entities == 1) return rng.between(5, static_cast<int>(std::min<std::size_t>(7, available)));
  static constexpr int kTypes[] = {0, 0, 4, 3, 2};
  return kTypes[entities];
}

inline Paragraph make_paragraph(const std::vector<EntityKind>& kinds, const GeneratorOptions& options, SplitMix64& rng,
                                const std::string& id_prefix) {
  const EntityKind& kind = rng.pick(kinds);
  const int n_entities = options.entities_per_paragraph;

  // Every name and value in a paragraph is distinct, so each answer text occurs as one fact only.
  std::set<std::string> used;
  const auto fresh = [&](const ValueMaker& make) {
    for (int attempt = 0; attempt < 1000; ++attempt) {
      std::string value = make(rng);
      if (used.insert(value).second) return value;
    }
    throw std::logic_error("cannot draw distinct values for kind " + kind.name);
  };

  std::vector<std::string> entities;
  for (int e = 0; e < n_entities; ++e) entities.push_back(fresh(kind.make_name));

  std::vector<std::size_t> types(kind.facts.size());
  for (std::size_t t = 0; t < types.size(); ++t) types[t] = t;
  rng.shuffle(types);
  types.resize(static_cast<std::size_t>(fact_types_for(n_entities, rng, kind.facts.size())));

  struct Fact {
    const FactType* type;
    std::size_t entity;
    std::string value;
    std::size_t answer_start;
  };
  struct Sentence {
    std::string text;
    std::size_t answer_offset;
    std::size_t fact;  // kNoFact for fillers
  };
  constexpr std::size_t kNoFact = static_cast<std::size_t>(-1);

  std::vector<Fact> facts;
  std::vector<Sentence> sentences;
  for (const std::size_t t : types) {
    for (std::size_t e = 0; e < entities.size(); ++e) {
      const FactType& type = kind.facts[t];
      std::string value = fresh(type.make_value);
      const std::string& statement = rng.pick(type.statements);
      Rendered r = render(statement, entities[e], value);
      sentences.push_back({std::move(r.text), r.answer_offset, facts.size()});
      facts.push_back({&type, e, std::move(value), 0});
    }
  }
  if (rng.one_in(2)) {
    const std::string& filler = rng.pick(kind.fillers);
    const std::size_t e = rng.below(entities.size());
    sentences.push_back({render(filler, entities[e], "").text, 0, kNoFact});
  }
  rng.shuffle(sentences);

  Paragraph paragraph;
  for (std::size_t e = 0; e < entities.size(); ++e) paragraph.title += (e ? ", " : "") + entities[e];
  for (const Sentence& s : sentences) {
    if (!paragraph.context.empty()) paragraph.context += ' ';
    if (s.fact != kNoFact) facts[s.fact].answer_start = paragraph.context.size() + s.answer_offset;
    paragraph.context += s.text;
  }

  // Questions: every fact once, in random order, then second and third phrasings if more are asked for.
  const std::size_t phrasings = 3;
  const std::size_t wanted = options.questions_per_paragraph == 0
                                 ? std::min<std::size_t>(facts.size(), kDefaultMaxQuestions)
                                 : std::min<std::size_t>(static_cast<std::size_t>(options.questions_per_paragraph), facts.size() * phrasings);
  std::vector<std::size_t> order(facts.size());
  for (std::size_t f = 0; f < order.size(); ++f) order[f] = f;
  rng.shuffle(order);
  std::vector<std::vector<std::string>> questions;  // per fact, its phrasings in random order
  for (const Fact& fact : facts) {
    questions.push_back(fact.type->questions);
    rng.shuffle(questions.back());
  }
  for (std::size_t round = 0; round < phrasings && paragraph.qas.size() < wanted; ++round) {
    for (std::size_t i = 0; i < order.size() && paragraph.qas.size() < wanted; ++i) {
      const Fact& fact = facts[order[i]];
      QuestionAnswer qa;
      qa.id = id_prefix + "_q" + std::to_string(paragraph.qas.size());
      qa.question = render(questions[order[i]][round], entities[fact.entity], "").text;
      qa.answer = fact.value;
      qa.answer_start = fact.answer_start;
      if (paragraph.context.compare(qa.answer_start, qa.answer.size(), qa.answer) != 0)
        throw std::logic_error("answer \"" + qa.answer + "\" is not at its offset in: " + paragraph.context);
      paragraph.qas.push_back(std::move(qa));
    }
  }
  return paragraph;
}

// answer_start counts characters while readers index bytes or code points; ASCII makes them agree.
inline void require_ascii(const std::string& text) {
  for (const char c : text)
    if (static_cast<unsigned char>(c) >= 0x80) throw std::logic_error("non-ASCII text: " + text);
}

inline std::vector<Paragraph> make_split(const std::vector<EntityKind>& kinds, const GeneratorOptions& options, std::uint64_t seed, int count,
                                         const std::string& split, const std::unordered_set<std::string>& avoid_contexts) {
  SplitMix64 rng(seed);
  std::vector<Paragraph> paragraphs;
  paragraphs.reserve(static_cast<std::size_t>(count));
  char id_prefix[64];
  for (int p = 0; p < count; ++p) {
    std::snprintf(id_prefix, sizeof(id_prefix), "%s_%06d", split.c_str(), p);
    Paragraph paragraph;
    do {  // a dev context must not also be a train context
      paragraph = make_paragraph(kinds, options, rng, id_prefix);
    } while (avoid_contexts.contains(paragraph.context));
    require_ascii(paragraph.context);
    for (const auto& qa : paragraph.qas) require_ascii(qa.question);
    paragraphs.push_back(std::move(paragraph));
  }
  return paragraphs;
}

// ---------------------------------------------------------------------------------------------------------------
// Output.

inline std::size_t question_count(const std::vector<Paragraph>& paragraphs) {
  std::size_t n = 0;
  for (const auto& p : paragraphs) n += p.qas.size();
  return n;
}

// One article per paragraph; ordered_json keeps SQuAD's key order.
inline nlohmann::ordered_json to_squad_json(const std::vector<Paragraph>& paragraphs) {
  nlohmann::ordered_json data = nlohmann::ordered_json::array();
  for (const auto& p : paragraphs) {
    nlohmann::ordered_json qas = nlohmann::ordered_json::array();
    for (const auto& qa : p.qas) {
      nlohmann::ordered_json answer = {{"text", qa.answer}, {"answer_start", qa.answer_start}};
      qas.push_back({{"id", qa.id}, {"question", qa.question}, {"answers", nlohmann::ordered_json::array({std::move(answer)})}});
    }
    nlohmann::ordered_json paragraph = {{"context", p.context}, {"qas", std::move(qas)}};
    data.push_back({{"title", p.title}, {"paragraphs", nlohmann::ordered_json::array({std::move(paragraph)})}});
  }
  return {{"version", "1.1"}, {"data", std::move(data)}};
}

}  // namespace synthetic

// Writes <dir>/train.json and <dir>/dev.json (each atomically); the same options give the same bytes.
inline SyntheticSquadSummary write_synthetic_squad(const std::filesystem::path& dir, const SyntheticSquadOptions& options) {
  using namespace synthetic;
  if (options.entities_per_paragraph < 1 || options.entities_per_paragraph > 4) {
    mpt::throw_error("synthetic SQuAD: entities_per_paragraph is ", options.entities_per_paragraph, "; it must be 1 to 4");
  }
  if (options.questions_per_paragraph < 0 || options.questions_per_paragraph > 27) {
    mpt::throw_error("synthetic SQuAD: questions_per_paragraph is ", options.questions_per_paragraph, "; it must be 0 to 27");
  }
  if (options.train_paragraphs < 1 || options.dev_paragraphs < 1) mpt::throw_error("synthetic SQuAD: at least one paragraph per split");
  const auto kinds = make_entity_kinds();
  validate_templates(kinds);
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec || !std::filesystem::is_directory(dir)) {
    mpt::throw_error("synthetic SQuAD: cannot create the folder ", dir, ": ", ec ? ec.message() : "a file of that name exists");
  }
  const GeneratorOptions generator{options.entities_per_paragraph, options.questions_per_paragraph};
  const auto train = make_split(kinds, generator, stream_seed(options.seed, 1), options.train_paragraphs, "train", {});
  std::unordered_set<std::string> train_contexts;
  for (const auto& p : train) train_contexts.insert(p.context);
  const auto dev = make_split(kinds, generator, stream_seed(options.seed, 2), options.dev_paragraphs, "dev", train_contexts);
  SyntheticSquadSummary summary{dir / "train.json", dir / "dev.json", train.size(), question_count(train), dev.size(), question_count(dev)};
  mpt::io::write_file_atomic(summary.train, to_squad_json(train).dump(1));
  mpt::io::write_file_atomic(summary.dev, to_squad_json(dev).dump(1));
  return summary;
}

}  // namespace bert_qa
