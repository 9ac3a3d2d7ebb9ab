#include "init/users.h"

#include <gtest/gtest.h>

namespace qabox::init {
namespace {

const char* kPasswd =
    "root:x:0:0:root:/root:/bin/sh\n"
    "broken line\n"
    "bad:x:notanumber:1:::\n"
    "postgres:x:105:110:PostgreSQL:/var/lib/postgresql:/bin/bash\n"
    "app:x:1000:1000::relative:/bin/sh\n";
const char* kGroup =
    "root:x:0:\n"
    "ssl-cert:x:109:postgres,other\n"
    "postgres:x:110:\n"
    "junk\n"
    "extra:x:200:app,postgres\n";

TEST(Users, FindsUserGroupsAndHome) {
  auto u = lookupUser(kPasswd, kGroup, "postgres");
  ASSERT_TRUE(u) << u.status().message();
  EXPECT_EQ(u->uid, 105u);
  EXPECT_EQ(u->gid, 110u);
  EXPECT_EQ(u->home, "/var/lib/postgresql");
  EXPECT_EQ(u->groups, (std::vector<gid_t>{110, 109, 200}));
}

TEST(Users, RootAndDefaults) {
  auto r = lookupUser(kPasswd, kGroup, "");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->uid, 0u);
  EXPECT_EQ(r->home, "/root");
  r = lookupUser("", "", "root");  // no passwd at all
  ASSERT_TRUE(r);
  EXPECT_EQ(r->home, "/root");
  auto a = lookupUser(kPasswd, kGroup, "app");
  ASSERT_TRUE(a);
  EXPECT_EQ(a->home, "/");  // not absolute: not used
}

TEST(Users, UnknownAndMalformedAreNotFound) {
  EXPECT_EQ(lookupUser(kPasswd, kGroup, "nobody").status().code(), Code::kNotFound);
  EXPECT_EQ(lookupUser(kPasswd, kGroup, "bad").status().code(), Code::kNotFound);
  EXPECT_EQ(lookupUser(kPasswd, kGroup, "broken line").status().code(), Code::kNotFound);
}

}  // namespace
}  // namespace qabox::init
