t
t
t
t
t
t
t
