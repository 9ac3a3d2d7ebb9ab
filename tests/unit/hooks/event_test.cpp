#include "hooks/event.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "unit/hooks/fixtures.h"

namespace qabox::hooks {
namespace {

using test::Headers;
using test::kSecret;
using test::signedHeaders;
using test::webhookFixture;
using ::testing::HasSubstr;
using Kind = HookEvent::Kind;

Result<HookEvent> parse(Provider p, const std::string& event, const std::string& body) {
  Headers h = signedHeaders(p, event, body, kSecret, "d-1");
  auto j = parseBody(body);
  if (!j) return j.status();
  return parseEvent(p, h.fn(), *j);
}

Result<HookEvent> parseFixture(Provider p, const std::string& event, const std::string& file) {
  std::string body = webhookFixture(file);
  EXPECT_FALSE(body.empty()) << file;
  return parse(p, event, body);
}

// ------------------------------------------------------------- signatures (attacker first)

TEST(VerifySignature, ForgedOrMissingSignaturesAreRefused) {
  std::string body = webhookFixture("github/push.json");
  Headers h = signedHeaders(Provider::kGithub, "push", body, kSecret, "d");
  EXPECT_TRUE(verifySignature(Provider::kGithub, h.fn(), body, kSecret).isOk());

  // Another secret, another body, a missing header, another scheme, a
  // truncated or padded digest, an empty secret on our side.
  EXPECT_EQ(verifySignature(Provider::kGithub, h.fn(), body, "another-secret-xx").code(),
            Code::kUnauthenticated);
  EXPECT_FALSE(verifySignature(Provider::kGithub, h.fn(), body + " ", kSecret).isOk());
  std::string good = hmacSha256Hex(kSecret, body);
  for (const std::string& forged :
       std::vector<std::string>{std::string(), "sha1=" + good, "sha256=" + good.substr(0, 63),
                                "sha256=" + good + "0", "sha256=", "SHA256=" + good, good}) {
    Headers f = h;
    if (forged.empty()) {
      f.erase("X-Hub-Signature-256");
    } else {
      f.set("X-Hub-Signature-256", forged);
    }
    Status s = verifySignature(Provider::kGithub, f.fn(), body, kSecret);
    EXPECT_EQ(s.code(), Code::kUnauthenticated) << forged;
    EXPECT_THAT(s.message(), ::testing::Not(HasSubstr(kSecret)));
  }
  EXPECT_FALSE(verifySignature(Provider::kGithub, h.fn(), body, "").isOk());
  // Upper-case hex is the same digest.
  Headers upper = h;
  std::string up = good;
  for (char& c : up) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  upper.set("X-Hub-Signature-256", "sha256=" + up);
  EXPECT_TRUE(verifySignature(Provider::kGithub, upper.fn(), body, kSecret).isOk());
}

TEST(VerifySignature, GitlabTokenMustEqualTheSecret) {
  std::string body = webhookFixture("gitlab/push.json");
  Headers h = signedHeaders(Provider::kGitlab, "Push Hook", body, kSecret, "d");
  EXPECT_TRUE(verifySignature(Provider::kGitlab, h.fn(), body, kSecret).isOk());
  for (const std::string& forged : {kSecret.substr(0, kSecret.size() - 1), kSecret + "x",
                                    std::string("x") + kSecret.substr(1), std::string()}) {
    Headers f = h;
    if (forged.empty()) {
      f.erase("X-Gitlab-Token");
    } else {
      f.set("X-Gitlab-Token", forged);
    }
    EXPECT_EQ(verifySignature(Provider::kGitlab, f.fn(), body, kSecret).code(),
              Code::kUnauthenticated)
        << forged;
  }
  // A GitHub-style signature does not stand in for GitLab's token.
  Headers other = signedHeaders(Provider::kGithub, "push", body, kSecret, "d");
  EXPECT_FALSE(verifySignature(Provider::kGitlab, other.fn(), body, kSecret).isOk());
  EXPECT_FALSE(hasSignature(Provider::kGitlab, other.fn()));
}

TEST(VerifySignature, GiteaAndForgejoHeadersBothWork) {
  std::string body = webhookFixture("gitea/push.json");
  Headers h = signedHeaders(Provider::kGitea, "push", body, kSecret, "d");
  EXPECT_TRUE(verifySignature(Provider::kGitea, h.fn(), body, kSecret).isOk());
  Headers forgejo = h;
  forgejo.erase("X-Gitea-Signature");
  EXPECT_FALSE(hasSignature(Provider::kGitea, forgejo.fn()));
  forgejo.set("X-Forgejo-Signature", hmacSha256Hex(kSecret, body));
  EXPECT_TRUE(hasSignature(Provider::kGitea, forgejo.fn()));
  EXPECT_TRUE(verifySignature(Provider::kGitea, forgejo.fn(), body, kSecret).isOk());
  forgejo.set("X-Forgejo-Signature", hmacSha256Hex("wrong-secret-wrong", body));
  EXPECT_FALSE(verifySignature(Provider::kGitea, forgejo.fn(), body, kSecret).isOk());
  Headers truncated = h;
  truncated.set("X-Gitea-Signature", hmacSha256Hex(kSecret, body).substr(0, 32));
  EXPECT_FALSE(verifySignature(Provider::kGitea, truncated.fn(), body, kSecret).isOk());
}

TEST(VerifySignature, KnownDigest) {
  // RFC 4231 test case 2.
  EXPECT_EQ(hmacSha256Hex("Jefe", "what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
}

TEST(DeliveryId, EachHostsHeaderAndNothingOdd) {
  Headers h;
  EXPECT_FALSE(deliveryId(Provider::kGithub, h.fn()).isOk());
  h.set("X-GitHub-Delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958");
  EXPECT_EQ(*deliveryId(Provider::kGithub, h.fn()), "72d3162e-cc78-11e3-81ab-4c9367dc0958");
  h.set("X-Gitlab-Webhook-UUID", "w-1");
  EXPECT_EQ(*deliveryId(Provider::kGitlab, h.fn()), "w-1");
  h.set("X-Gitlab-Event-UUID", "e-1");
  EXPECT_EQ(*deliveryId(Provider::kGitlab, h.fn()), "e-1");
  h.set("X-Gitea-Delivery", "a b");
  EXPECT_FALSE(deliveryId(Provider::kGitea, h.fn()).isOk());
  h.set("X-Gitea-Delivery", std::string(200, 'a'));
  EXPECT_FALSE(deliveryId(Provider::kGitea, h.fn()).isOk());
}

// ------------------------------------------------------------- parsing

TEST(ParseBody, MalformedJsonIsAnErrorNotACrash) {
  for (const std::string& bad :
       std::vector<std::string>{"", "{", "[1,2]", "\"x\"", "{\"a\":}", "null", std::string(1, '\0'),
                                std::string(100000, '[')}) {
    auto j = parseBody(bad);
    EXPECT_FALSE(j.isOk()) << bad.substr(0, 10);
    EXPECT_EQ(j.status().code(), Code::kInvalidArgument);
  }
}

TEST(ParseEvent, GithubFixtures) {
  auto opened = parseFixture(Provider::kGithub, "pull_request", "github/pull_request_opened.json");
  ASSERT_TRUE(opened.isOk()) << opened.status().toString();
  EXPECT_EQ(opened->kind, Kind::kPrOpened);
  EXPECT_EQ(opened->repoFullName, "acme/shop");
  EXPECT_EQ(opened->number, 12);
  EXPECT_EQ(opened->source, "feature/SHOP-12-cart");
  EXPECT_EQ(opened->target, "develop");
  EXPECT_EQ(opened->head, "6dcb09b5b57875f334f61aebed695e2e4193db5e");

  auto sync =
      parseFixture(Provider::kGithub, "pull_request", "github/pull_request_synchronize.json");
  ASSERT_TRUE(sync.isOk());
  EXPECT_EQ(sync->kind, Kind::kPrOpened);

  auto merged =
      parseFixture(Provider::kGithub, "pull_request", "github/pull_request_closed_merged.json");
  ASSERT_TRUE(merged.isOk());
  EXPECT_EQ(merged->kind, Kind::kPrClosed);
  EXPECT_TRUE(merged->merged);

  auto closed = parseFixture(Provider::kGithub, "pull_request", "github/pull_request_closed.json");
  ASSERT_TRUE(closed.isOk());
  EXPECT_EQ(closed->kind, Kind::kPrClosed);
  EXPECT_FALSE(closed->merged);

  auto push = parseFixture(Provider::kGithub, "push", "github/push.json");
  ASSERT_TRUE(push.isOk());
  EXPECT_EQ(push->kind, Kind::kPush);
  EXPECT_EQ(push->branch, "feature/SHOP-12-cart");
  EXPECT_EQ(push->after, "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c");

  auto deleted = parseFixture(Provider::kGithub, "push", "github/push_deleted.json");
  ASSERT_TRUE(deleted.isOk());
  EXPECT_EQ(deleted->kind, Kind::kIgnored);
  EXPECT_THAT(deleted->ignoredWhy, HasSubstr("deleted"));

  auto tag = parseFixture(Provider::kGithub, "push", "github/push_tag.json");
  ASSERT_TRUE(tag.isOk());
  EXPECT_EQ(tag->kind, Kind::kIgnored);

  auto comment = parseFixture(Provider::kGithub, "issue_comment", "github/issue_comment.json");
  ASSERT_TRUE(comment.isOk());
  EXPECT_EQ(comment->kind, Kind::kComment);
  EXPECT_EQ(comment->number, 12);
  EXPECT_THAT(comment->body, HasSubstr("Deploy this please"));
  EXPECT_TRUE(comment->source.empty());  // GitHub's comment names no branch

  auto ping = parseFixture(Provider::kGithub, "ping", "github/ping.json");
  ASSERT_TRUE(ping.isOk());
  EXPECT_EQ(ping->kind, Kind::kIgnored);
}

TEST(ParseEvent, GitlabFixtures) {
  auto open =
      parseFixture(Provider::kGitlab, "Merge Request Hook", "gitlab/merge_request_open.json");
  ASSERT_TRUE(open.isOk()) << open.status().toString();
  EXPECT_EQ(open->kind, Kind::kPrOpened);
  EXPECT_EQ(open->repoFullName, "acme/shop");
  EXPECT_EQ(open->number, 12);
  EXPECT_EQ(open->source, "feature/SHOP-12-cart");

  auto merge =
      parseFixture(Provider::kGitlab, "Merge Request Hook", "gitlab/merge_request_merge.json");
  ASSERT_TRUE(merge.isOk());
  EXPECT_EQ(merge->kind, Kind::kPrClosed);
  EXPECT_TRUE(merge->merged);

  auto close =
      parseFixture(Provider::kGitlab, "Merge Request Hook", "gitlab/merge_request_close.json");
  ASSERT_TRUE(close.isOk());
  EXPECT_EQ(close->kind, Kind::kPrClosed);
  EXPECT_FALSE(close->merged);

  auto push = parseFixture(Provider::kGitlab, "Push Hook", "gitlab/push.json");
  ASSERT_TRUE(push.isOk());
  EXPECT_EQ(push->kind, Kind::kPush);
  EXPECT_EQ(push->branch, "feature/SHOP-12-cart");

  auto note = parseFixture(Provider::kGitlab, "Note Hook", "gitlab/note_merge_request.json");
  ASSERT_TRUE(note.isOk());
  EXPECT_EQ(note->kind, Kind::kComment);
  EXPECT_EQ(note->source, "feature/SHOP-12-cart");  // GitLab names the branches
  EXPECT_EQ(note->target, "develop");
}

TEST(ParseEvent, GiteaFixtures) {
  auto opened = parseFixture(Provider::kGitea, "pull_request", "gitea/pull_request_opened.json");
  ASSERT_TRUE(opened.isOk()) << opened.status().toString();
  EXPECT_EQ(opened->kind, Kind::kPrOpened);
  EXPECT_EQ(opened->source, "feature/SHOP-12-cart");
  auto merged =
      parseFixture(Provider::kGitea, "pull_request", "gitea/pull_request_closed_merged.json");
  ASSERT_TRUE(merged.isOk());
  EXPECT_EQ(merged->kind, Kind::kPrClosed);
  EXPECT_TRUE(merged->merged);
  auto push = parseFixture(Provider::kGitea, "push", "gitea/push.json");
  ASSERT_TRUE(push.isOk());
  EXPECT_EQ(push->kind, Kind::kPush);
  auto comment = parseFixture(Provider::kGitea, "issue_comment", "gitea/issue_comment.json");
  ASSERT_TRUE(comment.isOk());
  EXPECT_EQ(comment->kind, Kind::kComment);
  EXPECT_EQ(comment->body, "deploy this please");
}

// Every field the parser reads, removed or of the wrong type: an error
// naming it, never a crash or a default.
TEST(ParseEvent, EveryMalformedFieldIsNamed) {
  struct Case {
    Provider p;
    std::string event;
    std::string file;
    std::vector<std::string> paths;
  };
  std::vector<Case> cases = {
      {Provider::kGithub,
       "pull_request",
       "github/pull_request_closed_merged.json",
       {"/action", "/pull_request/number", "/pull_request/head/ref", "/pull_request/base/ref",
        "/pull_request/head/sha", "/pull_request/merged", "/repository/full_name"}},
      {Provider::kGithub, "push", "github/push.json", {"/ref", "/after", "/repository/full_name"}},
      {Provider::kGithub,
       "issue_comment",
       "github/issue_comment.json",
       {"/action", "/issue/number", "/comment/body"}},
      {Provider::kGitlab,
       "Merge Request Hook",
       "gitlab/merge_request_merge.json",
       {"/object_attributes/iid", "/object_attributes/source_branch",
        "/object_attributes/target_branch", "/object_attributes/last_commit/id",
        "/object_attributes/action", "/project/path_with_namespace"}},
      {Provider::kGitlab,
       "Note Hook",
       "gitlab/note_merge_request.json",
       {"/object_attributes/noteable_type", "/merge_request/iid", "/merge_request/source_branch",
        "/object_attributes/note"}},
      {Provider::kGitea,
       "pull_request",
       "gitea/pull_request_closed_merged.json",
       {"/pull_request/number", "/pull_request/head/ref", "/pull_request/merged"}},
  };
  for (const Case& c : cases) {
    nlohmann::json base = nlohmann::json::parse(webhookFixture(c.file));
    for (const std::string& path : c.paths) {
      nlohmann::json::json_pointer ptr(path);
      std::string dotted = path.substr(1);
      for (char& ch : dotted) ch = ch == '/' ? '.' : ch;
      for (const nlohmann::json& bad : {nlohmann::json(), nlohmann::json(12345),
                                        nlohmann::json::array({1}), nlohmann::json("\x01")}) {
        nlohmann::json j = base;
        if (bad.is_null()) {
          j[ptr.parent_pointer()].erase(ptr.back());
        } else {
          j[ptr] = bad;
        }
        auto e = parse(c.p, c.event, j.dump());
        // A value of the right type may be a valid one (a number, a name, an
        // action that is only ignored); a missing field or a list never is.
        if (e.isOk()) {
          EXPECT_FALSE(bad.is_null() || bad.is_array()) << c.file << " " << path;
          continue;
        }
        EXPECT_EQ(e.status().code(), Code::kInvalidArgument);
        EXPECT_THAT(e.status().message(), HasSubstr(dotted)) << c.file << " " << bad.dump();
      }
    }
  }
}

TEST(ParseEvent, BoundsAndOddValues) {
  nlohmann::json j = nlohmann::json::parse(webhookFixture("github/push.json"));
  j["ref"] = "refs/heads/" + std::string(300, 'a');
  EXPECT_FALSE(parse(Provider::kGithub, "push", j.dump()).isOk());
  j["ref"] = "refs/heads/";
  EXPECT_FALSE(parse(Provider::kGithub, "push", j.dump()).isOk());
  j["ref"] = "refs/heads/ok";
  j["after"] = "not-a-sha-not-a-sha-not-a-sha-not-a-sha-";
  EXPECT_FALSE(parse(Provider::kGithub, "push", j.dump()).isOk());
  nlohmann::json c = nlohmann::json::parse(webhookFixture("github/issue_comment.json"));
  c["comment"]["body"] = std::string(kMaxCommentBytes + 1, 'x');
  EXPECT_FALSE(parse(Provider::kGithub, "issue_comment", c.dump()).isOk());
  c["comment"]["body"] = "deploy this please";
  c["issue"].erase("pull_request");
  auto onIssue = parse(Provider::kGithub, "issue_comment", c.dump());
  ASSERT_TRUE(onIssue.isOk());
  EXPECT_EQ(onIssue->kind, Kind::kIgnored);
  nlohmann::json pr = nlohmann::json::parse(webhookFixture("github/pull_request_opened.json"));
  pr["pull_request"]["number"] = -3;
  EXPECT_FALSE(parse(Provider::kGithub, "pull_request", pr.dump()).isOk());
  // No event header at all.
  Headers none;
  auto body = parseBody(webhookFixture("github/push.json"));
  ASSERT_TRUE(body.isOk());
  EXPECT_FALSE(parseEvent(Provider::kGithub, none.fn(), *body).isOk());
}

TEST(Provider, Names) {
  EXPECT_EQ(parseProvider("github"), Provider::kGithub);
  EXPECT_EQ(parseProvider("forgejo"), Provider::kGitea);
  EXPECT_FALSE(parseProvider("GitHub").has_value());
  EXPECT_FALSE(parseProvider("../x").has_value());
}

TEST(ParseEvent, ForksTrustAndTimes) {
  auto same = parseFixture(Provider::kGithub, "pull_request", "github/pull_request_closed.json");
  ASSERT_TRUE(same.isOk());
  EXPECT_FALSE(same->fork);
  EXPECT_EQ(same->atUnixSeconds, *parseTimestamp("2026-12-01T12:00:00Z"));  // closed_at
  auto fork =
      parseFixture(Provider::kGithub, "pull_request", "github/pull_request_closed_fork.json");
  ASSERT_TRUE(fork.isOk());
  EXPECT_TRUE(fork->fork);
  auto glFork =
      parseFixture(Provider::kGitlab, "Merge Request Hook", "gitlab/merge_request_close_fork.json");
  ASSERT_TRUE(glFork.isOk());
  EXPECT_TRUE(glFork->fork);
  auto glSame =
      parseFixture(Provider::kGitlab, "Merge Request Hook", "gitlab/merge_request_close.json");
  ASSERT_TRUE(glSame.isOk());
  EXPECT_FALSE(glSame->fork);
  auto comment = parseFixture(Provider::kGithub, "issue_comment", "github/issue_comment.json");
  ASSERT_TRUE(comment.isOk());
  EXPECT_TRUE(comment->authorTrusted);
  EXPECT_FALSE(comment->prClosed);
  auto gitea = parseFixture(Provider::kGitea, "issue_comment", "gitea/issue_comment.json");
  ASSERT_TRUE(gitea.isOk());
  EXPECT_TRUE(gitea->authorTrusted);
  nlohmann::json j = nlohmann::json::parse(webhookFixture("github/issue_comment.json"));
  j["comment"]["author_association"] = "CONTRIBUTOR";
  auto contributor = parse(Provider::kGithub, "issue_comment", j.dump());
  ASSERT_TRUE(contributor.isOk());
  EXPECT_FALSE(contributor->authorTrusted);
  auto note = parseFixture(Provider::kGitlab, "Note Hook", "gitlab/note_merge_request.json");
  ASSERT_TRUE(note.isOk());
  EXPECT_TRUE(note->authorTrusted);  // GitLab says nothing of the author's access
  EXPECT_FALSE(note->fork);
}

TEST(Timestamps, TheHostsFormats) {
  EXPECT_EQ(parseTimestamp("1970-01-01T00:00:00Z"), 0);
  EXPECT_EQ(parseTimestamp("2026-12-01T12:00:00Z"), 1796126400);
  EXPECT_EQ(parseTimestamp("2026-12-01T14:00:00+02:00"), 1796126400);
  EXPECT_EQ(parseTimestamp("2026-12-01T07:00:00-0500"), 1796126400);
  EXPECT_EQ(parseTimestamp("2026-12-01 12:00:00 UTC"), 1796126400);
  EXPECT_EQ(parseTimestamp("2026-12-01T12:00:00.123Z"), 1796126400);
  EXPECT_FALSE(parseTimestamp("").has_value());
  EXPECT_FALSE(parseTimestamp("yesterday").has_value());
  EXPECT_FALSE(parseTimestamp("2026-13-01T12:00:00Z").has_value());
  EXPECT_FALSE(parseTimestamp("2026-12-01T12:00:00 CEST").has_value());
}

TEST(Sha256, KnownDigest) {
  EXPECT_EQ(sha256Hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

}  // namespace
}  // namespace qabox::hooks
